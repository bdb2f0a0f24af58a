package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmkeep/swarmkeep/driver"
	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// marker stands for a secret value: it must never reach a record.
const marker = "MARKER-s3cr3t-VALUE-9f1c"

func fullRequest() *driver.Request {
	return &driver.Request{
		SecretName: "app_db", SecretLabels: map[string]string{"note": marker},
		ServiceName: "app_web", ServiceID: "svc1", ServiceLabels: map[string]string{"x": marker},
		ServiceHostname: marker, TaskName: "app_web.1.task1", TaskID: "task1", TaskImage: "nginx:1.27", NodeID: "node1",
	}
}

func TestFromEventEveryClass(t *testing.T) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 123456789, time.FixedZone("X", 3600))
	base := driver.Event{Request: fullRequest(), Spec: driver.Spec{Name: "db", Backend: "local"}, Backend: "local", Latency: 1234567 * time.Nanosecond}
	cases := []struct {
		class   driver.Class
		want    Decision
		mod     func(*driver.Event)
		checkFn func(*testing.T, Record)
	}{
		{driver.ClassOK, DecisionAllow, func(e *driver.Event) { e.Version, e.Size, e.Cached, e.DoNotReuse = 3, 24, true, true }, func(t *testing.T, r Record) {
			if r.Version != 3 || r.Size != 24 || !r.Cached || !r.DoNotReuse || r.Stale || r.Error != "" {
				t.Errorf("%+v", r)
			}
		}},
		{driver.ClassOK, DecisionAllow, func(e *driver.Event) { e.Version, e.Stale, e.Age = 2, true, 90*time.Second }, func(t *testing.T, r Record) {
			if !r.Stale || r.StaleAgeMS != 90000 {
				t.Errorf("stale %+v", r)
			}
		}},
		{driver.ClassBadRequest, DecisionError, func(e *driver.Event) { *e = driver.Event{} }, func(t *testing.T, r Record) {
			if r.Secret != "" || r.Stored != "" || r.Node != "" {
				t.Errorf("bad request %+v", r)
			}
		}},
		{driver.ClassBadLabel, DecisionError, nil, nil},
		{driver.ClassNoBackend, DecisionError, nil, nil},
		{driver.ClassNotFound, DecisionError, func(e *driver.Event) { e.Spec.Version = 9 }, func(t *testing.T, r Record) {
			if r.Version != 9 || r.Size != 0 {
				t.Errorf("pinned version %+v", r)
			}
		}},
		{driver.ClassInvalidRef, DecisionError, nil, nil},
		{driver.ClassCorrupt, DecisionError, nil, nil},
		{driver.ClassDenied, DecisionDeny, nil, nil},
		{driver.ClassPolicyDenied, DecisionDeny, nil, nil},
		{driver.ClassUnavailable, DecisionError, nil, nil},
		{driver.ClassTimeout, DecisionError, nil, nil},
		{driver.ClassInvalidValue, DecisionError, func(e *driver.Event) { e.Size = 600000 }, func(t *testing.T, r Record) {
			if r.Size != 0 {
				t.Errorf("size on a failure %+v", r)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(string(tc.class), func(t *testing.T) {
			ev := base
			if tc.mod != nil {
				tc.mod(&ev)
			}
			ev.Class = tc.class
			if tc.class != driver.ClassOK {
				ev.Err = fmt.Errorf("raw error with %s", marker)
				ev.Line = "swarmkeep: secret app_db: " + string(tc.class)
			}
			r := FromEvent(ev, at)
			if r.V != 1 || r.Decision != tc.want || r.Class != string(tc.class) || r.Error != ev.Line {
				t.Fatalf("%+v", r)
			}
			if !r.Time.Equal(at) || r.Time.Location() != time.UTC {
				t.Fatalf("time %v", r.Time)
			}
			if ev.Request != nil && (r.Secret != "app_db" || r.Stored != "db" || r.Backend != "local" || r.Service != "app_web" ||
				r.ServiceID != "svc1" || r.Task != "app_web.1.task1" || r.TaskID != "task1" || r.Image != "nginx:1.27" ||
				r.Node != "node1" || r.LatencyMS != 1.234) {
				t.Fatalf("fields %+v", r)
			}
			if tc.checkFn != nil {
				tc.checkFn(t, r)
			}
			b, err := r.appendLine(nil)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(b, []byte(marker)) {
				t.Fatalf("record leaks the marker: %s", b)
			}
			if !bytes.Contains(b, []byte(`"time":"2025-01-02T02:04:05.123456789Z"`)) || bytes.Count(b, []byte("\n")) != 1 {
				t.Fatalf("line %s", b)
			}
		})
	}
}

func TestRecordLineCannotBeForged(t *testing.T) {
	ev := driver.Event{Request: &driver.Request{SecretName: "a\n{\"v\":1,\"decision\":\"allow\"}"}, Class: driver.ClassBadLabel, Line: "x\ry"}
	r := FromEvent(ev, time.Now())
	b, _ := r.appendLine(nil)
	if bytes.Count(b, []byte("\n")) != 1 || bytes.ContainsRune(b, '\r') {
		t.Fatalf("record spans lines: %q", b)
	}
}

// fakeBackend answers by stored name; served values are the marker.
type fakeBackend struct{}

func (fakeBackend) Get(ctx context.Context, ref backend.Ref) (backend.Secret, error) {
	switch ref.Name {
	case "good":
		return backend.Secret{Value: []byte(marker), Version: 7}, nil
	case "stale":
		return backend.Secret{Value: []byte(marker), Version: 6, Stale: true, Age: 90 * time.Second, Cached: true}, nil
	case "huge":
		return backend.Secret{Value: bytes.Repeat([]byte(marker), driver.MaxValueBytes/len(marker)+1), Version: 1}, nil
	case "slow":
		<-ctx.Done()
		return backend.Secret{}, ctx.Err()
	case "locked":
		return backend.Secret{}, fmt.Errorf("token: %w", backend.ErrDenied)
	case "broken":
		return backend.Secret{}, fmt.Errorf("record: %w", backend.ErrCorrupt)
	case "down":
		return backend.Secret{}, fmt.Errorf("dial: %w", backend.ErrUnavailable)
	case "bad":
		return backend.Secret{}, fmt.Errorf("name: %w", backend.ErrInvalidRef)
	}
	return backend.Secret{}, fmt.Errorf("%s: %w", ref.Name, backend.ErrNotFound)
}

func (fakeBackend) Close() error { return nil }

// TestDriverToTrailNeverHoldsTheValue runs real requests, every class, through
// the driver and its handler into a Writer, then greps the file for the value.
func TestDriverToTrailNeverHoldsTheValue(t *testing.T) {
	file := filepath.Join(t.TempDir(), "audit.log")
	w, err := Open(file, Options{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := driver.New(driver.Options{
		Routes:  []driver.Route{{Name: "local", Backend: fakeBackend{}}},
		Timeout: driver.MinTimeout, Observer: w.Observe,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]driver.Class{
		"good": driver.ClassOK, "stale": driver.ClassOK, "huge": driver.ClassInvalidValue, "slow": driver.ClassTimeout,
		"locked": driver.ClassDenied, "broken": driver.ClassCorrupt, "down": driver.ClassUnavailable,
		"bad": driver.ClassInvalidRef, "missing": driver.ClassNotFound,
	}
	for name := range want {
		req := fullRequest()
		req.SecretName, req.SecretLabels[driver.LabelName] = name, name
		d.Get(context.Background(), *req)
	}
	for labels, class := range map[string]driver.Class{driver.LabelBackend: driver.ClassNoBackend, driver.LabelVersion: driver.ClassBadLabel, driver.LabelEncoding: driver.ClassBadLabel} {
		req := fullRequest()
		req.SecretName, req.SecretLabels[labels] = string(class)+labels, "nope"
		want[req.SecretName] = class
		d.Get(context.Background(), *req)
	}
	postBadRequest(t, d)
	want[""] = driver.ClassBadRequest
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte(marker)) || bytes.Contains(b, []byte("MARKER")) {
		t.Fatalf("the trail holds the value:\n%s", b)
	}
	f, _ := os.Open(file)
	defer f.Close()
	got := map[string]Record{}
	st, err := Scan(f, Filter{}, func(r Record) error { got[r.Secret] = r; return nil })
	if err != nil || st.Records != len(want) || st.Skipped != 0 {
		t.Fatalf("scan %+v %v", st, err)
	}
	for name, class := range want {
		r := got[name]
		if r.Class != string(class) || r.Decision != DecisionOf(class) {
			t.Errorf("%q: class %s decision %s, want %s", name, r.Class, r.Decision, class)
		}
		if class != driver.ClassOK && class != driver.ClassBadRequest && (r.Error == "" || r.Node != "node1") {
			t.Errorf("%q: %+v", name, r)
		}
	}
	if r := got["good"]; r.Version != 7 || r.Size != len(marker) || r.Stored != "good" || r.Backend != "local" {
		t.Errorf("good: %+v", r)
	}
	if r := got["stale"]; !r.Stale || r.StaleAgeMS != 90000 || !r.Cached {
		t.Errorf("stale: %+v", r)
	}
}

func postBadRequest(t *testing.T, d *driver.Driver) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skipf("no loopback: %v", err)
	}
	go func() { _ = http.Serve(l, driver.NewHandler(d)) }()
	defer l.Close()
	resp, err := http.Post("http://"+l.Addr().String()+driver.GetSecretPath, "application/json", strings.NewReader("{not json "+marker))
	if err != nil {
		t.Fatal(err)
	}
	var body struct{ Err string }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Err == "" {
		t.Fatalf("bad request answer: %v %q", err, body.Err)
	}
	resp.Body.Close()
}

func TestDecisionOf(t *testing.T) {
	if DecisionOf(driver.ClassOK) != DecisionAllow || DecisionOf(driver.ClassDenied) != DecisionDeny ||
		DecisionOf(driver.ClassPolicyDenied) != DecisionDeny || DecisionOf("something_new") != DecisionError {
		t.Fatal("decisions")
	}
}
