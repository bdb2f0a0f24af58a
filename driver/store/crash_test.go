package store

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Environment of the crash helper process.
const (
	crashMode = "SWARMKEEP_CRASH_MODE" // "put" or "rekey"
	crashDir  = "SWARMKEEP_CRASH_DIR"
	crashKey  = "SWARMKEEP_CRASH_KEY"
)

// TestHelperWriter is not a test: the crash tests run the test binary
// again with this test selected and the environment above set. It puts
// random values forever (rekeying after each Put in "rekey" mode) and
// prints "ack NAME VERSION SHA256" once each Put has returned, until it is
// killed.
func TestHelperWriter(t *testing.T) {
	mode := os.Getenv(crashMode)
	if mode == "" {
		t.Skip("helper process for the crash tests")
	}
	fail := func(err error) {
		fmt.Printf("error %v\n", err)
		os.Exit(2)
	}
	ctx := context.Background()
	m, err := OpenDir(os.Getenv(crashDir))
	if err != nil {
		fail(err)
	}
	s, err := Open(ctx, m, KeyFile(os.Getenv(crashKey)))
	if err != nil {
		fail(err)
	}
	// Never outlive a parent that died without killing us.
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		name := fmt.Sprintf("crash/%d", mrand.IntN(5))
		value := make([]byte, 1+mrand.IntN(16<<10))
		rand.Read(value)
		v, err := s.Put(ctx, name, value)
		if err != nil {
			fail(err)
		}
		// One write(2) of less than PIPE_BUF: a kill cannot split it.
		fmt.Printf("ack %s %d %x\n", name, v, sha256.Sum256(value))
		if mode == "rekey" {
			if _, err := s.Rekey(ctx); err != nil {
				fail(err)
			}
		}
	}
	os.Exit(0)
}

func TestCrash_Put(t *testing.T)   { runCrashTest(t, "put") }
func TestCrash_Rekey(t *testing.T) { runCrashTest(t, "rekey") }

// runCrashTest SIGKILLs a writer process at random moments, then checks
// that the store is intact and holds every value that was acknowledged.
func runCrashTest(t *testing.T, mode string) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	ctx := context.Background()
	ts := newTestStore(t, InitOptions{MaxVersions: maxVersionsLimit})
	acked := map[string]map[uint64]string{} // name → version → sha256
	nacks, kills := 0, 0
	deadline := time.Now().Add(7 * time.Second)
	for kills < 25 && time.Now().Before(deadline) {
		n, err := crashOnce(t, mode, ts, acked)
		if err != nil {
			t.Fatal(err)
		}
		nacks += n
		kills++
	}
	if kills < 5 || nacks == 0 {
		t.Fatalf("only %d kills, %d acks: too slow to test anything", kills, nacks)
	}
	t.Logf("%d kills, %d acknowledged puts", kills, nacks)

	s := ts.handle(t)
	ok, bad, err := s.Verify(ctx, func(name string, err error) {
		if err != nil {
			t.Errorf("Verify: %v", err)
		}
	})
	if bad != 0 || err != nil || ok == 0 {
		t.Fatalf("Verify after crashes = %d ok, %d bad, %v", ok, bad, err)
	}
	for name, vs := range acked {
		for v, sum := range vs {
			sec, err := s.Get(ctx, name, v)
			if err != nil {
				t.Fatalf("acknowledged %s version %d: %v", name, v, err)
			}
			if fmt.Sprintf("%x", sha256.Sum256(sec.Value)) != sum {
				t.Fatalf("acknowledged %s version %d has another value", name, v)
			}
		}
	}
	if mode == "rekey" {
		if _, err := s.Rekey(ctx); err != nil {
			t.Fatal(err)
		}
		_, recs := keyIDs(t, ts)
		checkAllUnder(t, ts, len(recs))
	}
	// The next writer removes whatever temp file the last kill left.
	mustPut(t, s, "crash/after", "x")
	if st := strays(t, ts.dir); len(st) != 0 {
		t.Fatalf("temp files left after a clean write: %v", st)
	}
}

// crashOnce starts a writer, waits for its first ack, lets it run for a
// random moment and kills it, recording every ack it printed.
func crashOnce(t *testing.T, mode string, ts testStore, acked map[string]map[uint64]string) (int, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperWriter$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashMode+"="+mode, crashDir+"="+ts.dir, crashKey+"="+ts.key)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	n := 0
	record := func(line string) error {
		f := strings.Fields(line)
		if len(f) != 4 || f[0] != "ack" || len(f[3]) != 64 {
			return fmt.Errorf("helper: %q (stderr: %s)", line, stderr.String())
		}
		v, err := strconv.ParseUint(f[2], 10, 64)
		if err != nil {
			return err
		}
		if acked[f[1]] == nil {
			acked[f[1]] = map[uint64]string{}
		}
		acked[f[1]][v] = f[3]
		n++
		return nil
	}
	// Kill after a random moment once the first Put is acknowledged (so
	// the helper is past start-up); give up if it never is.
	timer := time.AfterFunc(20*time.Second, func() { cmd.Process.Kill() })
	defer timer.Stop()
	var failed error
	for line := range lines {
		if failed != nil {
			continue // drain
		}
		if failed = record(line); failed != nil {
			cmd.Process.Kill()
			continue
		}
		if n == 1 {
			timer.Reset(time.Duration(mrand.IntN(80)) * time.Millisecond) // SIGKILL
		}
	}
	if failed != nil {
		cmd.Wait()
		return n, failed
	}
	cmd.Wait()
	if n == 0 {
		return 0, fmt.Errorf("helper exited without an ack (stderr: %s)", stderr.String())
	}
	return n, nil
}
