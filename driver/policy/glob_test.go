package policy

import (
	"errors"
	"testing"
)

func TestGlob(t *testing.T) {
	tests := []struct {
		pattern string
		yes     []string
		no      []string
	}{
		{"db_password", []string{"db_password"}, []string{"db_passwords", "x/db_password", ""}},
		{"payments/*", []string{"payments/db", "payments/"}, []string{"payments/a/b", "payments", "paymentsx/db"}},
		{"payments/**", []string{"payments/db", "payments/a/b/c"}, []string{"payments", "payments_x/db"}},
		{"**", []string{"", "a", "a/b/c"}, nil},
		{"*", []string{"", "a", "abc"}, []string{"a/b"}},
		{"a/**/b", []string{"a/b", "a/x/b", "a/x/y/b"}, []string{"a/xb", "a/x/bb", "ab"}},
		{"**/ca", []string{"ca", "tls/ca", "a/b/ca"}, []string{"xca", "tls/cab"}},
		{"x**", []string{"x", "xy", "x/y/z"}, []string{"yx"}},
		{"db?", []string{"db1", "dbx"}, []string{"db", "db12", "db/"}},
		{"*.example.com/app@sha256:*", []string{"registry.example.com/app@sha256:00"}, []string{"r.example.com/x/app@sha256:00", "registry.example.com/app:1"}},
		{"**/app@sha256:*", []string{"r.example.com/team/app@sha256:00"}, []string{"r.example.com/team/app:1"}},
		{"a.b+c(d)|e$", []string{"a.b+c(d)|e$"}, []string{"aXb+c(d)|e$"}},
	}
	for _, tt := range tests {
		g, err := CompileGlob(tt.pattern)
		if err != nil {
			t.Fatalf("%q: %v", tt.pattern, err)
		}
		if g.String() != tt.pattern {
			t.Errorf("String() = %q", g.String())
		}
		for _, s := range tt.yes {
			if !g.Match(s) || !g.re.MatchString(s) {
				t.Errorf("%q should match %q", tt.pattern, s)
			}
		}
		for _, s := range tt.no {
			if g.Match(s) || g.re.MatchString(s) {
				t.Errorf("%q should not match %q", tt.pattern, s)
			}
		}
	}
}

func TestGlobInvalid(t *testing.T) {
	for _, p := range []string{"", "a/***", "a[bc]", "{a,b}", `a\*`, "a\nb", "a\x00", "\xff", string(make([]byte, maxPattern+1))} {
		if _, err := CompileGlob(p); !errors.Is(err, errGlob) {
			t.Errorf("CompileGlob(%q) = %v, want an invalid pattern error", p, err)
		}
	}
}

// The fast paths must agree with the regexp for every input.
func FuzzGlobFastPath(f *testing.F) {
	f.Add("payments/**", "payments/x")
	f.Add("db", "db")
	f.Add("**", "")
	f.Fuzz(func(t *testing.T, pattern, s string) {
		g, err := CompileGlob(pattern)
		if err != nil {
			return
		}
		if g.Match(s) != g.re.MatchString(s) {
			t.Fatalf("%q on %q: fast %v, regexp %v", pattern, s, g.Match(s), g.re.MatchString(s))
		}
	})
}

func TestNarrowedByServices(t *testing.T) {
	tests := []struct {
		globs, service string
		narrowed       bool
	}{
		{"", "any", false},
		{"payments_api", "payments_api", false},
		{"payments_api", "payments_worker", true},
		{"payments_*, billing_api", "billing_api", false},
		{"payments_*,billing_api", "payments_x", false},
		{"payments_*", "web_front", true},
		{"a[b]", "a[b]", true},    // invalid label: fail closed
		{" , ", "anything", true}, // empty glob in the list
	}
	for _, tt := range tests {
		if got := NarrowedByServices(tt.globs, tt.service); got != tt.narrowed {
			t.Errorf("NarrowedByServices(%q, %q) = %v", tt.globs, tt.service, got)
		}
	}
	if CheckServices("a_*,b") != nil || CheckServices("") == nil || CheckServices("a,,b") == nil {
		t.Fatal("CheckServices")
	}
}
