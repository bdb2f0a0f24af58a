// Package mediumtest is the conformance suite every [store.Medium] passes:
// compare-and-swap on one key, no lost update under concurrent
// read-modify-write from several handles, whole blobs only (no torn read),
// listing by prefix, delete, and the writer lock when the medium is a
// [store.Locker]. A medium's own test file runs it with a [Harness] and
// keeps only what is particular to that medium (crash recovery of files,
// etcd paging and fencing, …).
//
//	func TestDirMediumConformance(t *testing.T) {
//		mediumtest.Run(t, mediumtest.Harness{New: func(t *testing.T) func(*testing.T) store.Medium {
//			dir := filepath.Join(t.TempDir(), "m") // one storage
//			return func(t *testing.T) store.Medium { // one handle on it
//				m, err := store.OpenDir(dir)
//				if err != nil {
//					t.Fatal(err)
//				}
//				t.Cleanup(func() { m.Close() })
//				return m
//			}
//		}})
//	}
package mediumtest
