package audit

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/swarmkeep/swarmkeep/driver"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// trail builds a file's bytes: one record per (secret, service, class,
// minutes after t0).
func trail(t *testing.T) []byte {
	t.Helper()
	var b []byte
	for i, c := range []struct {
		secret, stored, service, backend string
		class                            driver.Class
	}{
		{"app_db", "db", "app_web", "local", driver.ClassOK},
		{"app_api_key", "api_key", "app_web", "local", driver.ClassNotFound},
		{"ops_token", "token", "ops_cron", "vault", driver.ClassDenied},
		{"app_db", "db", "app_worker", "local", driver.ClassOK},
		{"ops_token", "token", "ops_cron", "vault", driver.ClassTimeout},
	} {
		ev := driver.Event{
			Request: &driver.Request{SecretName: c.secret, ServiceName: c.service, ServiceID: "id-" + c.service},
			Spec:    driver.Spec{Name: c.stored}, Backend: c.backend, Class: c.class,
		}
		r := FromEvent(ev, t0.Add(time.Duration(i)*time.Minute))
		var err error
		if b, err = r.appendLine(b); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func scanAll(t *testing.T, data []byte, f Filter) ([]string, Stats) {
	t.Helper()
	var got []string
	st, err := Scan(bytes.NewReader(data), f, func(r Record) error {
		got = append(got, r.Secret+"/"+r.Service)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got, st
}

func TestScanFilters(t *testing.T) {
	data := trail(t)
	for _, tc := range []struct {
		name string
		f    Filter
		want string
	}{
		{"all", Filter{}, "app_db/app_web app_api_key/app_web ops_token/ops_cron app_db/app_worker ops_token/ops_cron"},
		{"secret", Filter{Secret: "app_db"}, "app_db/app_web app_db/app_worker"},
		{"secret glob", Filter{Secret: "ops_*"}, "ops_token/ops_cron ops_token/ops_cron"},
		{"stored name", Filter{Secret: "api_*"}, "app_api_key/app_web"},
		{"service glob", Filter{Service: "app_w*"}, "app_db/app_web app_api_key/app_web app_db/app_worker"},
		{"service id", Filter{Service: "id-app_worker"}, "app_db/app_worker"},
		{"allow", Filter{Decision: "allow"}, "app_db/app_web app_db/app_worker"},
		{"deny", Filter{Decision: "deny"}, "ops_token/ops_cron"},
		{"error", Filter{Decision: "error"}, "app_api_key/app_web ops_token/ops_cron"},
		{"backend", Filter{Backend: "vault"}, "ops_token/ops_cron ops_token/ops_cron"},
		{"since", Filter{Since: t0.Add(3 * time.Minute)}, "app_db/app_worker ops_token/ops_cron"},
		{"until", Filter{Until: t0.Add(time.Minute)}, "app_db/app_web"},
		{"range", Filter{Since: t0.Add(time.Minute), Until: t0.Add(3 * time.Minute)}, "app_api_key/app_web ops_token/ops_cron"},
		{"combined", Filter{Secret: "app_*", Decision: "allow", Since: t0.Add(time.Second)}, "app_db/app_worker"},
		{"none", Filter{Secret: "nope"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, st := scanAll(t, data, tc.f)
			if strings.Join(got, " ") != tc.want || st.Records != 5 || st.Matched != len(got) {
				t.Fatalf("got %q (%+v), want %q", got, st, tc.want)
			}
		})
	}
}

func TestScanTornLastLine(t *testing.T) {
	data := trail(t)
	torn := append(bytes.Clone(data), data[:40]...) // half a record, no newline
	got, st := scanAll(t, torn, Filter{})
	if len(got) != 5 || st.Skipped != 1 || st.Records != 5 {
		t.Fatalf("%v %+v", got, st)
	}
	// A whole last record without its newline still counts.
	got, st = scanAll(t, bytes.TrimSuffix(data, []byte("\n")), Filter{})
	if len(got) != 5 || st.Skipped != 0 {
		t.Fatalf("%v %+v", got, st)
	}
	// Blank lines are not records, nor damage.
	if _, st = scanAll(t, append([]byte("\n\n"), data...), Filter{}); st.Skipped != 0 || st.Records != 5 {
		t.Fatalf("%+v", st)
	}
}

func TestScanRejectsUnknownVersions(t *testing.T) {
	data := append(trail(t), []byte(`{"v":2,"time":"2025-03-01T13:00:00Z","secret":"x"}`+"\n")...)
	n := 0
	st, err := Scan(bytes.NewReader(data), Filter{}, func(Record) error { n++; return nil })
	if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "line 6") || n != 5 || st.Records != 5 {
		t.Fatalf("%v %d %+v", err, n, st)
	}
	if _, err := Scan(strings.NewReader(`{"level":"info","msg":"hello"}`), Filter{}, func(Record) error { return nil }); !errors.Is(err, ErrFormat) {
		t.Fatalf("foreign JSON: %v", err)
	}
	long := strings.Repeat("x", maxLine+1)
	if _, err := Scan(strings.NewReader(long), Filter{}, func(Record) error { return nil }); !errors.Is(err, ErrFormat) {
		t.Fatalf("long line: %v", err)
	}
}

func TestScanStopsOnCallbackError(t *testing.T) {
	stop := errors.New("stop")
	n := 0
	_, err := Scan(bytes.NewReader(trail(t)), Filter{}, func(Record) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("%v after %d", err, n)
	}
}

func TestFilterValidate(t *testing.T) {
	for _, f := range []Filter{
		{Secret: "[a"},
		{Service: "a[-"},
		{Decision: "maybe"},
		{Since: t0, Until: t0},
	} {
		if err := f.Validate(); err == nil {
			t.Errorf("%+v: no error", f)
		}
		if _, err := Scan(strings.NewReader(""), f, func(Record) error { return nil }); err == nil {
			t.Errorf("%+v: scan ran", f)
		}
	}
	if err := (Filter{Secret: "a*", Decision: "deny", Since: t0, Until: t0.Add(time.Second)}).Validate(); err != nil {
		t.Fatal(err)
	}
}
