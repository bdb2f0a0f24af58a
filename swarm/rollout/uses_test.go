package rollout

import (
	"context"
	"reflect"
	"strings"
	"testing"
)

// TestFindResolvesAsThePluginDoes: which secret objects and services use
// stored "api" in backend "local", by the plugin's own rules.
func TestFindResolvesAsThePluginDoes(t *testing.T) {
	f := newFake()
	api := f.addSecret("api", "swarmkeep", nil)
	prod := f.addSecret("api-prod", "swarmkeep:latest", nil)                                    // a longer name: never a prefix match
	renamed := f.addSecret("db_creds", "swarmkeep", map[string]string{"swarmkeep.name": "api"}) // the name label
	pinned := f.addSecret("api_v1", "swarmkeep", map[string]string{"swarmkeep.name": "api", "swarmkeep.version": "1"})
	stack := f.addSecret("st_api", "swarmkeep", map[string]string{"com.docker.stack.namespace": "st"}) // reads st/api
	inStack := f.addSecret("st_x", "swarmkeep", map[string]string{"com.docker.stack.namespace": "st", "swarmkeep.name": "api"})
	other := f.addSecret("api2", "otherplugin", map[string]string{"swarmkeep.name": "api"}) // not this plugin's
	remote := f.addSecret("api3", "swarmkeep", map[string]string{"swarmkeep.backend": "vault", "swarmkeep.name": "api"})
	explicit := f.addSecret("api4", "swarmkeep", map[string]string{"swarmkeep.backend": "local", "swarmkeep.name": "api"})
	f.addSecret("typo", "swarmkeep", map[string]string{"swarmkeep.nmae": "api"})
	f.addSecret("api", "", nil) // a plain Swarm secret (a second object cannot share the name, but the test does not care)

	web := f.addService("web", 2, map[string]string{AutoLabel: AutoValue}, nil, api, prod)
	f.addService("prod", 1, nil, nil, prod)
	f.addService("others", 1, nil, nil, other, remote, stack)
	f.addService("pinned", 1, nil, nil, pinned)
	f.addService("mixed", 1, nil, nil, renamed, inStack, explicit)

	rep, err := Find(context.Background(), f, Target{Name: "api", Backend: "local", Default: "local", Plugins: []string{"swarmkeep"}})
	if err != nil {
		t.Fatal(err)
	}
	var secrets []string
	for _, s := range rep.Secrets {
		secrets = append(secrets, s.Name)
	}
	if want := []string{"api", "db_creds", "api_v1", "st_x", "api4"}; !reflect.DeepEqual(secrets, want) {
		t.Fatalf("secrets %q, want %q", secrets, want)
	}
	var services []string
	for _, u := range rep.Services {
		services = append(services, u.Name)
	}
	if want := []string{"mixed", "pinned", "web"}; !reflect.DeepEqual(services, want) {
		t.Fatalf("services %q, want %q", services, want)
	}
	for _, u := range rep.Services {
		switch u.Name {
		case "web":
			if !u.Auto || !u.Rollable() || len(u.Mounts) != 1 || u.Mounts[0].Target != "t-"+api || len(u.Tasks) != 2 || u.ID != web {
				t.Errorf("web: %+v", u)
			}
		case "pinned":
			if u.Auto || u.Rollable() || u.Mounts[0].Pinned != 1 {
				t.Errorf("pinned: %+v", u)
			}
		case "mixed":
			if len(u.Mounts) != 3 {
				t.Errorf("mixed: %+v", u)
			}
		}
	}
	if len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0], "typo") {
		t.Fatalf("warnings %q, want one about secret typo", rep.Warnings)
	}

	// The same objects, for the stack's name st/api: only st_api.
	rep, err = Find(context.Background(), f, Target{Name: "st/api", Backend: "local", Default: "local", Plugins: []string{"swarmkeep"}})
	if err != nil || len(rep.Secrets) != 1 || rep.Secrets[0].Name != "st_api" || len(rep.Services) != 1 || rep.Services[0].Name != "others" {
		t.Fatalf("st/api: %+v, %v", rep, err)
	}
	// In the vault instance: api3 only.
	rep, _ = Find(context.Background(), f, Target{Name: "api", Backend: "vault", Default: "local", Plugins: []string{"swarmkeep"}})
	if len(rep.Secrets) != 1 || rep.Secrets[0].Name != "api3" {
		t.Fatalf("vault api: %+v", rep.Secrets)
	}
}

func TestAnnotateFlagsMixedVersions(t *testing.T) {
	f := newFake()
	sec := f.addSecret("api", "swarmkeep", nil)
	f.addService("web", 2, nil, nil, sec)
	f.version = 2
	f.addService("new", 2, nil, nil, sec)
	rep, err := Find(context.Background(), f, Target{Name: "api", Backend: "local", Default: "local", Plugins: []string{"swarmkeep"}})
	if err != nil {
		t.Fatal(err)
	}
	// A crashed replica of web came back with version 2.
	served, _ := f.servedCopy()
	for _, u := range rep.Services {
		if u.Name == "web" {
			served[u.Tasks[0].ID] = 2
		}
	}
	rep.Annotate(served)
	for _, u := range rep.Services {
		switch u.Name {
		case "web":
			if !u.Mixed || !reflect.DeepEqual(u.Versions, []uint64{1, 2}) {
				t.Errorf("web: mixed %v versions %v, want mixed 1,2", u.Mixed, u.Versions)
			}
		case "new":
			if u.Mixed || !reflect.DeepEqual(u.Versions, []uint64{2}) {
				t.Errorf("new: mixed %v versions %v, want 2 only", u.Mixed, u.Versions)
			}
		}
	}
}

func TestServedFromTheAuditTrail(t *testing.T) {
	trail := strings.Join([]string{
		`{"v":1,"time":"2026-01-01T00:00:00Z","secret":"api","stored":"api","version":1,"backend":"local","task_id":"t1","decision":"allow","class":"ok","cached":false,"do_not_reuse":false,"latency_ms":0.1}`,
		`{"v":1,"time":"2026-01-01T00:00:01Z","secret":"api","stored":"api","version":2,"backend":"local","task_id":"t2","decision":"allow","class":"ok","cached":false,"do_not_reuse":false,"latency_ms":0.1}`,
		`{"v":1,"time":"2026-01-01T00:00:02Z","secret":"api-prod","stored":"api-prod","version":7,"backend":"local","task_id":"t3","decision":"allow","class":"ok","cached":false,"do_not_reuse":false,"latency_ms":0.1}`,
		`{"v":1,"time":"2026-01-01T00:00:03Z","secret":"api","stored":"api","version":3,"backend":"local","task_id":"t4","decision":"error","class":"unavailable","cached":false,"do_not_reuse":false,"latency_ms":0.1}`,
		`{"v":1,"time":"2026-01-01T00:00:04Z","secret":"api","stored":"api","version":9,"backend":"vault","task_id":"t5","decision":"allow","class":"ok","cached":false,"do_not_reuse":false,"latency_ms":0.1}`,
		`{"v":1,"time":"2026-01-01T00:00:05Z","secret":"api_v1","stored":"api","version":1,"backend":"local","task_id":"t2","decision":"allow","class":"ok","cached":false,"do_not_reuse":false,"latency_ms":0.1}`,
		`{"v":1,"ti`, // torn last line
	}, "\n")
	s, err := ServedFrom(Target{Name: "api", Backend: "local"}, strings.NewReader(trail))
	if err != nil {
		t.Fatal(err)
	}
	if want := (Served{"t1": 1, "t2": 2}); !reflect.DeepEqual(s, want) {
		t.Fatalf("served %v, want %v", s, want)
	}
}
