package audit

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
	"time"
)

// marshalLine is the reference: what encoding/json writes for a record.
func marshalLine(r *Record) ([]byte, error) {
	j, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	return append(j, '\n'), nil
}

func checkSameAsMarshal(t *testing.T, r Record) {
	t.Helper()
	want, werr := marshalLine(&r)
	got, gerr := r.appendLine([]byte("prefix"))
	if (werr != nil) != (gerr != nil) {
		t.Fatalf("%+v: json.Marshal error %v, appendLine error %v", r, werr, gerr)
	}
	if werr != nil {
		return
	}
	if !bytes.Equal(got[len("prefix"):], want) || !bytes.HasPrefix(got, []byte("prefix")) {
		t.Fatalf("appendLine differs from json.Marshal:\n got %q\nwant %q", got, want)
	}
}

// TestAppendLineMatchesMarshal: the hand-written encoder writes the
// documented format, byte for byte what encoding/json wrote before it.
func TestAppendLineMatchesMarshal(t *testing.T) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 123456789, time.UTC)
	full := Record{V: 1, Time: at, Secret: "app_db", Stored: "db/x", Version: 3, Backend: "local", Service: "app_web",
		ServiceID: "svc", Task: "app_web.1.t", TaskID: "t", Image: "nginx:1.27@sha256:ab", Node: "n1",
		Decision: DecisionAllow, Class: "ok", Cached: true, Stale: true, StaleAgeMS: 90000, DoNotReuse: true,
		Size: 24, LatencyMS: 0.042, Rule: "shared", Error: "swarmkeep: secret x: not found"}
	checkSameAsMarshal(t, full)
	for _, uid := range []int{0, 1000, -1} {
		op := Record{V: 1, Time: at, Stored: "db", Version: 2, Decision: DecisionOperator, Class: "ok",
			Action: ActionPut, User: "alice", UID: &uid}
		checkSameAsMarshal(t, op)
	}
	checkSameAsMarshal(t, Record{})
	checkSameAsMarshal(t, Record{V: 1, Time: at, Decision: DecisionError, Class: "bad_request", LatencyMS: 1.5})
	for _, s := range []string{"", "a\"b\\c", "\x00\x01\b\f\n\r\t\x1f\x7f", "<script>&amp;</script>", "\u2028\u2029",
		"é日本\U0001F600", "\xff\xfe bad utf8 \xc3", "\xed\xa0\x80 surrogate", "quote\"\n{\"v\":1}"} {
		r := full
		r.Secret, r.Error, r.Image = s, s, s
		checkSameAsMarshal(t, r)
	}
	for _, f := range []float64{0, 0.001, 1, 1234.567, 1e-7, 5e-324, 1e21, 1e20, 123456789012.345, -0.5, math.MaxFloat64, math.Inf(1), math.NaN()} {
		r := full
		r.LatencyMS = f
		checkSameAsMarshal(t, r)
	}
	for _, tm := range []time.Time{{}, at.In(time.FixedZone("X", 3600)), at.In(time.FixedZone("Y", -(5*3600 + 30*60 + 17))),
		at.In(time.FixedZone("Z", 24*3600)), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)} {
		r := full
		r.Time = tm
		checkSameAsMarshal(t, r)
	}
	for _, n := range []int64{math.MinInt64, -1, 1, math.MaxInt64} {
		r := full
		r.StaleAgeMS, r.Size, r.V, r.Version = n, int(n), int(n), uint64(n)
		checkSameAsMarshal(t, r)
	}
}

// FuzzAppendLineMatchesMarshal compares the two encoders on any strings and
// numbers.
func FuzzAppendLineMatchesMarshal(f *testing.F) {
	f.Add("app_db", "x\n\"<>&\u2028\xff", int64(3), 0.042, int64(1735787045123456789), false)
	f.Fuzz(func(t *testing.T, s, e string, n int64, lat float64, ns int64, flag bool) {
		r := Record{V: int(n), Time: time.Unix(0, ns).UTC(), Secret: s, Stored: e, Version: uint64(n), Backend: s,
			Service: e, ServiceID: s, Task: e, TaskID: s, Image: e, Node: s, Decision: Decision(e), Class: s,
			Cached: flag, Stale: !flag, StaleAgeMS: n, DoNotReuse: flag, Size: int(n), LatencyMS: lat, Rule: s, Error: e,
			Action: e, User: s}
		if flag {
			uid := int(n)
			r.UID = &uid
		}
		checkSameAsMarshal(t, r)
	})
}
