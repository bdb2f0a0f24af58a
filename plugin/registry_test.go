package main

import (
	"testing"

	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/store"
)

// TestWritableTypesHaveAMedium: the operator commands (init, put, rm, …)
// reach a writable type's records through its store medium, so every type
// this binary registers as Writable must register one, and no other type
// may (the commands would write where the registry says they do not).
// It checks the binary as built, with whatever backend build tags apply.
func TestWritableTypesHaveAMedium(t *testing.T) {
	names := backend.Types()
	if len(names) == 0 {
		t.Fatal("the binary registers no backend type")
	}
	writable := 0
	for _, name := range names {
		typ, err := backend.Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		if typ.Caps.Writable {
			writable++
		}
		if has := store.HasMedium(name); has != typ.Caps.Writable {
			t.Errorf("type %s: writable %v, store medium registered %v", name, typ.Caps.Writable, has)
		}
	}
	if writable == 0 {
		t.Errorf("no writable type among %v: the file type is always built in", names)
	}
}
