package policy

import (
	"testing"
)

const examplePolicy = `version: 1
default: stack
shared: ["shared/**", "tls/ca"]
rules:
  - name: payments-api
    match:
      stack: payments
      service: "payments_api*"
      service_labels: {tier: backend}
      image: "registry.example.com/payments/*@sha256:*"
      node: "*"
    allow: ["payments/**", "db/payments/*"]
    deny: ["payments/admin/**"]
  - name: ops
    match:
      service_labels: {team: ops}
    allow: ["**"]
  - name: no-root
    deny: ["root/**"]
  - name: pinned-node
    match: {node: "node-a?"}
    allow: ["node/*"]
`

func mustParse(t testing.TB, src string) *Policy {
	t.Helper()
	p, err := Parse([]byte(src), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDecide(t *testing.T) {
	api := Identity{
		Stack: "payments", Service: "payments_api_v2",
		ServiceLabels: map[string]string{"com.docker.stack.namespace": "payments", "tier": "backend"},
		Image:         "registry.example.com/payments/api:1.2@sha256:0123", Node: "node-b1",
	}
	noDigest := api
	noDigest.Image = "registry.example.com/payments/api:1.2"
	deepImage := api
	deepImage.Image = "registry.example.com/payments/x/api@sha256:0123"
	wrongTier := api
	wrongTier.ServiceLabels = map[string]string{"tier": "frontend"}
	noTier := api
	noTier.ServiceLabels = nil
	ops := Identity{Stack: "ops", Service: "ops_tool", ServiceLabels: map[string]string{"team": "ops"}}
	web := Identity{Stack: "web", Service: "web_front"}
	loose := Identity{Service: "adhoc"}
	slash := Identity{Stack: "web/admin", Service: "x"}
	nodeA := Identity{Service: "n", Node: "node-a1"}

	p := mustParse(t, examplePolicy)
	tests := []struct {
		name   string
		id     Identity
		stored string
		allow  bool
		rule   string
	}{
		{"rule allows", api, "payments/db", true, "payments-api"},
		{"rule allows one segment", api, "db/payments/main", true, "payments-api"},
		{"star stays in segment", api, "db/payments/main/x", false, ""},
		{"deny wins over allow", api, "payments/admin/root", false, "payments-api"},
		{"deny of another matching rule wins", ops, "root/key", false, "no-root"},
		{"deny wins over shared", api, "root/x", false, "no-root"},
		{"image without digest: default still applies", noDigest, "payments/db", true, RuleStackNamespace},
		{"image without digest: rule off", noDigest, "db/payments/main", false, ""},
		{"image star does not cross slash", deepImage, "db/payments/main", false, ""},
		{"label value mismatch", wrongTier, "db/payments/main", false, ""},
		{"label missing", noTier, "db/payments/main", false, ""},
		{"ops reads anything", ops, "payments/admin/root", true, "ops"},
		{"shared list", web, "shared/tls/ca", true, RuleShared},
		{"shared exact", web, "tls/ca", true, RuleShared},
		{"shared exact only", web, "tls/key", false, ""},
		{"own stack", web, "web/session", true, RuleStackNamespace},
		{"own stack deep", web, "web/a/b", true, RuleStackNamespace},
		{"other stack", web, "payments/db", false, ""},
		{"stack prefix is not namespace", web, "webhooks/x", false, ""},
		{"stack name alone", web, "web", false, ""},
		{"stack top-level", web, "db_password", false, ""},
		{"no stack top-level", loose, "db_password", true, RuleTopLevel},
		{"no stack nested", loose, "web/x", false, ""},
		{"stack with slash has no namespace", slash, "web/admin/x", false, ""},
		{"node glob", nodeA, "node/x", true, "pinned-node"},
		{"node glob one char", Identity{Service: "n", Node: "node-a12"}, "node/x", false, ""},
		{"dot-dot", web, "web/../payments/db", false, ""},
		{"empty segment", web, "web//x", false, ""},
		{"leading slash", loose, "/x", false, ""},
		{"trailing slash", web, "web/", false, ""},
		{"empty", loose, "", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := p.Decide(tt.id, tt.stored)
			if d.Allow != tt.allow || d.Rule != tt.rule || d.Reason == "" {
				t.Fatalf("Decide(%q) = %+v, want allow=%v rule=%q", tt.stored, d, tt.allow, tt.rule)
			}
		})
	}
}

func TestDecideDefaults(t *testing.T) {
	web := Identity{Stack: "web", Service: "web_front"}
	loose := Identity{Service: "adhoc"}
	deny := mustParse(t, "version: 1\ndefault: deny\nrules:\n- name: r\n  match: {stack: web}\n  allow: [web/db]\n")
	denyShared := mustParse(t, "version: 1\ndefault: deny\nshared: [pub/*]\n")
	noShared := mustParse(t, "version: 1\nshared: []\n")
	tests := []struct {
		name   string
		p      *Policy
		id     Identity
		stored string
		allow  bool
		rule   string
		reason string
	}{
		{"builtin own stack", Default(), web, "web/db", true, RuleStackNamespace, ""},
		{"builtin shared", Default(), loose, "shared/ca", true, RuleShared, "shared/** is shared with every service"},
		{"builtin top-level", Default(), loose, "db", true, RuleTopLevel, ""},
		{"builtin denies", Default(), web, "other/db", false, "", "no rule grants it"},
		{"deny mode: file grants", deny, web, "web/db", true, "r", `rule "r" allows web/db`},
		{"deny mode: no stack default", deny, web, "web/other", false, "", "no rule grants it"},
		{"deny mode: no top-level default", deny, loose, "db", false, "", ""},
		{"deny mode: builtin shared off", deny, loose, "shared/ca", false, "", ""},
		{"deny mode: file shared on", denyShared, loose, "pub/x", true, RuleShared, ""},
		{"empty shared list", noShared, loose, "shared/ca", false, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := tt.p.Decide(tt.id, tt.stored)
			if d.Allow != tt.allow || d.Rule != tt.rule || tt.reason != "" && d.Reason != tt.reason {
				t.Fatalf("Decide(%q) = %+v, want allow=%v rule=%q reason=%q", tt.stored, d, tt.allow, tt.rule, tt.reason)
			}
		})
	}
	if Default().Source() != "built-in default" || Default().Hash() != "builtin" {
		t.Fatal(Default().Source(), Default().Hash())
	}
}

func TestMatches(t *testing.T) {
	p := mustParse(t, examplePolicy)
	got := p.Matches(Identity{Service: "t", ServiceLabels: map[string]string{"team": "ops"}})
	if len(got) != 2 || got[0] != "ops" || got[1] != "no-root" {
		t.Fatalf("matches %v", got)
	}
	if names := p.RuleNames(); len(names) != 4 || names[0] != "payments-api" {
		t.Fatalf("names %v", names)
	}
}

func TestDecideAllocs(t *testing.T) {
	p := mustParse(t, examplePolicy)
	id := Identity{Stack: "payments", Service: "payments_api", ServiceLabels: map[string]string{"tier": "backend"},
		Image: "registry.example.com/payments/api@sha256:00", Node: "n"}
	if n := testing.AllocsPerRun(100, func() { p.Decide(id, "payments/admin/x") }); n != 0 {
		t.Fatalf("Decide allocates %v times", n)
	}
}

func BenchmarkDecide(b *testing.B) {
	p := mustParse(b, examplePolicy)
	w := &Watcher{}
	w.cur.Store(p)
	cases := []struct {
		name   string
		id     Identity
		stored string
	}{
		{"rule-allow", Identity{Stack: "payments", Service: "payments_api", ServiceLabels: map[string]string{"tier": "backend"},
			Image: "registry.example.com/payments/api@sha256:0123456789abcdef", Node: "n1"}, "db/payments/main"},
		{"stack-default", Identity{Stack: "web", Service: "web_front"}, "web/session"},
		{"deny", Identity{Stack: "web", Service: "web_front"}, "payments/db"},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				w.Decide(c.id, c.stored)
			}
		})
	}
}
