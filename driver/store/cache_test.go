package store

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
)

// Random puts, gets and drops on a small ring that wraps thousands of
// times: a hit must always give exactly what was last put for that ID at
// that revision, never another entry's bytes or a dropped one.
func TestCache_RingNeverGivesAWrongEntry(t *testing.T) {
	c := newRecordCache(16 << 10)
	defer c.close()
	type want struct {
		rev    Revision
		sealed []byte
		num    uint64
	}
	model := map[string]want{}
	rnd := rand.New(rand.NewPCG(1, 2))
	hits := 0
	for i := range 200_000 {
		id := fmt.Sprintf("id-%d", rnd.IntN(80))
		switch op := rnd.IntN(10); {
		case op < 4:
			sealed := bytes.Repeat([]byte{byte(i)}, 24+17+rnd.IntN(40))
			rev := Revision(fmt.Sprint(rnd.IntN(3)))
			_, _, gen := c.get(id, rev)
			c.put(id, rev, cachedVersion{keyID: 7, num: uint64(i), created: int64(i), sealed: sealed}, gen)
			model[id] = want{rev, sealed, uint64(i)}
		case op < 9:
			w, known := model[id]
			rev := w.rev
			if rnd.IntN(4) == 0 {
				rev = Revision(fmt.Sprint(rnd.IntN(3)))
			}
			v, ok, _ := c.get(id, rev)
			if !ok {
				continue
			}
			hits++
			if !known || rev != w.rev || v.num != w.num || v.created != int64(w.num) || v.keyID != 7 || !bytes.Equal(v.sealed, w.sealed) {
				t.Fatalf("op %d: get %s at %q gave version %d, want %+v (known %v)", i, id, rev, v.num, w, known)
			}
		default:
			c.drop(id)
			delete(model, id)
		}
	}
	if hits < 10_000 {
		t.Fatalf("only %d hits: the ring keeps too little", hits)
	}
	// A stale gen keeps a put out.
	_, _, gen := c.get("late", "")
	c.drop("other")
	c.put("late", "", cachedVersion{sealed: make([]byte, 41)}, gen)
	if _, ok, _ := c.get("late", ""); ok {
		t.Fatal("cached a record read before an invalidation")
	}
}
