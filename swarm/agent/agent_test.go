package agent

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"
	"github.com/sirupsen/logrus"
)

// fakeDocker answers NodeInspectWithRaw; any other call panics through the
// nil embedded interface, which would show as a test failure.
type fakeDocker struct {
	client.APIClient
	leader bool
	err    error
}

func (f *fakeDocker) NodeInspectWithRaw(_ context.Context, id string) (swarm.Node, []byte, error) {
	if f.err != nil {
		return swarm.Node{}, nil, f.err
	}
	return swarm.Node{ID: id, ManagerStatus: &swarm.ManagerStatus{Leader: f.leader}}, nil, nil
}

func quietLog() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

func TestLeader(t *testing.T) {
	for _, leader := range []bool{true, false} {
		env := &Env{Docker: &fakeDocker{leader: leader}, NodeID: "n1", Log: quietLog()}
		got, err := env.Leader(context.Background())
		if err != nil || got != leader {
			t.Fatalf("Leader() = %v, %v; want %v", got, err, leader)
		}
	}
	env := &Env{Docker: &fakeDocker{err: errors.New("engine down")}, NodeID: "n1", Log: quietLog()}
	if _, err := env.Leader(context.Background()); err == nil {
		t.Fatal("Leader() with a failing engine: no error")
	}
}

func TestRunRestartsFailedAndPanickingLoops(t *testing.T) {
	defer func(a, b time.Duration) { backoffMin, backoffMax = a, b }(backoffMin, backoffMax)
	backoffMin, backoffMax = time.Millisecond, 2*time.Millisecond

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var fails, panics, steady atomic.Int32
	loops := []Loop{
		{Name: "fails", Run: func(ctx context.Context, _ *Env) error {
			if fails.Add(1) == 3 {
				<-ctx.Done()
				return nil
			}
			return errors.New("backend down")
		}},
		{Name: "panics", Run: func(ctx context.Context, _ *Env) error {
			if panics.Add(1) == 2 {
				<-ctx.Done()
				return nil
			}
			panic("defect")
		}},
		{Name: "steady", Run: func(ctx context.Context, _ *Env) error {
			steady.Add(1)
			<-ctx.Done()
			return ctx.Err()
		}},
	}
	done := make(chan struct{})
	go func() {
		Run(ctx, &Env{Log: quietLog()}, loops)
		close(done)
	}()
	deadline := time.After(10 * time.Second)
	for fails.Load() < 3 || panics.Load() < 2 {
		select {
		case <-deadline:
			t.Fatalf("loops not restarted: fails=%d panics=%d", fails.Load(), panics.Load())
		case <-time.After(time.Millisecond):
		}
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if fails.Load() != 3 || panics.Load() != 2 || steady.Load() != 1 {
		t.Fatalf("runs: fails=%d panics=%d steady=%d; want 3, 2, 1", fails.Load(), panics.Load(), steady.Load())
	}
}

func TestRunNeedsALoop(t *testing.T) {
	if err := Run(context.Background(), &Env{Log: quietLog()}, nil); err == nil {
		t.Fatal("Run with no loop: no error")
	}
}
