package driver

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseSpec(t *testing.T) {
	tests := []struct {
		name    string
		secret  string
		labels  map[string]string
		want    Spec
		wantErr string
	}{
		{name: "defaults", secret: "db_password",
			want: Spec{Name: "db_password", Reuse: true, Encoding: EncodingRaw}},
		{name: "stack prefix becomes a namespace", secret: "demo_api_key", labels: map[string]string{StackNamespaceLabel: "demo"},
			want: Spec{Name: "demo/api_key", Reuse: true, Encoding: EncodingRaw, Stack: "demo"}},
		{name: "other stack prefix kept", secret: "prod_api_key", labels: map[string]string{StackNamespaceLabel: "demo"},
			want: Spec{Name: "prod_api_key", Reuse: true, Encoding: EncodingRaw, Stack: "demo"}},
		{name: "prefix only kept", secret: "demo_", labels: map[string]string{StackNamespaceLabel: "demo"},
			want: Spec{Name: "demo_", Reuse: true, Encoding: EncodingRaw, Stack: "demo"}},
		{name: "explicit name wins over stack", secret: "demo_api_key",
			labels: map[string]string{StackNamespaceLabel: "demo", LabelName: "shared/api"},
			want:   Spec{Name: "shared/api", Reuse: true, Encoding: EncodingRaw, Stack: "demo"}},
		{name: "all labels", secret: "s", labels: map[string]string{LabelVersion: "3", LabelReuse: "false",
			LabelEncoding: "base64", LabelBackend: "vault-prod", "unrelated": "x"},
			want: Spec{Name: "s", Version: 3, Reuse: false, Encoding: EncodingBase64, Backend: "vault-prod"}},
		{name: "unknown label", secret: "s", labels: map[string]string{"swarmkeep.nmae": "x"}, wantErr: `unknown label "swarmkeep.nmae"`},
		{name: "bad reuse", secret: "s", labels: map[string]string{LabelReuse: "maybe"}, wantErr: `swarmkeep.reuse="maybe" is invalid, want true or false`},
		{name: "version zero", secret: "s", labels: map[string]string{LabelVersion: "0"}, wantErr: "swarmkeep.version"},
		{name: "version text", secret: "s", labels: map[string]string{LabelVersion: "latest"}, wantErr: "swarmkeep.version"},
		{name: "bad encoding", secret: "s", labels: map[string]string{LabelEncoding: "hex"}, wantErr: "raw or base64"},
		{name: "empty name", secret: "s", labels: map[string]string{LabelName: ""}, wantErr: "swarmkeep.name"},
		{name: "name with percent", secret: "s", labels: map[string]string{LabelName: "a%sb"}, wantErr: "swarmkeep.name"},
		{name: "services", secret: "s", labels: map[string]string{LabelServices: "web, api_*"},
			want: Spec{Name: "s", Reuse: true, Encoding: EncodingRaw, Services: []string{"web", "api_*"}}},
		{name: "bad services", secret: "s", labels: map[string]string{LabelServices: "web,,api"}, wantErr: "swarmkeep.services"},
		{name: "bad services glob", secret: "s", labels: map[string]string{LabelServices: "[web"}, wantErr: "swarmkeep.services"},
		{name: "bad backend", secret: "s", labels: map[string]string{LabelBackend: "a b"}, wantErr: "swarmkeep.backend"},
		// Another case of the prefix is still ours: ignored, it would
		// read the secret's default name instead of the one asked for.
		{name: "capitalised prefix", secret: "s", labels: map[string]string{"Swarmkeep.name": "prod/db"}, wantErr: `"Swarmkeep.name": labels are case-sensitive, did you mean swarmkeep.name`},
		{name: "upper-case label", secret: "s", labels: map[string]string{"SWARMKEEP.VERSION": "2"}, wantErr: "did you mean swarmkeep.version"},
		{name: "folded prefix, unknown rest", secret: "s", labels: map[string]string{"SwarmKeep.colour": "x"}, wantErr: `unknown label "SwarmKeep.colour"`},
		{name: "long s folds to s", secret: "s", labels: map[string]string{"\u017fwarmkeep.name": "x"}, wantErr: "unknown label"},
		{name: "kelvin sign folds to k", secret: "s", labels: map[string]string{"swarm\u212aeep.name": "x"}, wantErr: "unknown label"},
		{name: "first error is stable", secret: "s", labels: map[string]string{LabelReuse: "x", LabelEncoding: "y"}, wantErr: "swarmkeep.encoding"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseSpec(tc.secret, tc.labels)
			if tc.wantErr != "" {
				var le *LabelError
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.As(err, &le) {
					t.Fatalf("got %v, want LabelError containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// Labels that only look like the prefix stay the user's.
func TestParseSpecOtherPrefixes(t *testing.T) {
	for _, k := range []string{"swarmkeep", "swarmkeepx.name", "swarmkee.name", "x.swarmkeep.name", "Swarmkeep"} {
		if _, err := ParseSpec("s", map[string]string{k: "v"}); err != nil {
			t.Errorf("label %q refused: %v", k, err)
		}
	}
}

func TestLabelErrorQuotesSafely(t *testing.T) {
	_, err := ParseSpec("s", map[string]string{LabelReuse: strings.Repeat("%d", 100)})
	msg := err.Error()
	if strings.Contains(msg, "%") || len(msg) > 200 {
		t.Fatalf("unsafe or long message: %q", msg)
	}
}

func TestParseSpecPathAndField(t *testing.T) {
	got, err := ParseSpec("s", map[string]string{LabelPath: "apps/web/db", LabelField: "password"})
	if err != nil || got.Path != "apps/web/db" || got.Field != "password" {
		t.Fatalf("%+v %v", got, err)
	}
	for _, bad := range []string{"", "/abs", "a/../b", "a b", "a?x=1", "a#f"} {
		if _, err := ParseSpec("s", map[string]string{LabelPath: bad}); err == nil {
			t.Errorf("path %q accepted", bad)
		}
	}
	if _, err := ParseSpec("s", map[string]string{LabelField: ""}); err == nil {
		t.Error("empty field accepted")
	}
}
