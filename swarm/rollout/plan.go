package rollout

import (
	"fmt"
	"time"

	"github.com/docker/docker/api/types/swarm"
)

// Plan is what a rollout of one service will do, from its own UpdateConfig
// (Swarm's defaults where it sets none), for --dry-run.
type Plan struct {
	Service       string        `json:"service"`
	ID            string        `json:"id"`
	Mode          string        `json:"mode"`
	Parallelism   uint64        `json:"parallelism"`
	Delay         time.Duration `json:"delay"`
	Order         string        `json:"order"`
	FailureAction string        `json:"failure_action"`
	Monitor       time.Duration `json:"monitor"`
	// Skip says why the service is not rolled (every mount pinned).
	Skip string `json:"skip,omitempty"`
}

// Swarm's update defaults (swarmkit api/defaults): what an UpdateConfig
// left empty means.
const (
	defaultParallelism   = 1
	defaultOrder         = swarm.UpdateOrderStopFirst
	defaultFailureAction = swarm.UpdateFailureActionPause
	defaultMonitor       = 5 * time.Second
)

// PlanOf describes the rollout of svc.
func PlanOf(svc swarm.Service) Plan {
	p := Plan{Service: svc.Spec.Name, ID: svc.ID, Mode: "global", Parallelism: defaultParallelism,
		Order: defaultOrder, FailureAction: defaultFailureAction, Monitor: defaultMonitor}
	if r := svc.Spec.Mode.Replicated; r != nil && r.Replicas != nil {
		p.Mode = fmt.Sprintf("replicated %d", *r.Replicas)
	}
	if uc := svc.Spec.UpdateConfig; uc != nil {
		p.Parallelism, p.Delay = uc.Parallelism, uc.Delay
		if uc.Order != "" {
			p.Order = uc.Order
		}
		if uc.FailureAction != "" {
			p.FailureAction = uc.FailureAction
		}
		if uc.Monitor != 0 {
			p.Monitor = uc.Monitor
		}
	}
	return p
}

// String is the plan as one line.
func (p Plan) String() string {
	if p.Skip != "" {
		return fmt.Sprintf("%s: skipped: %s", p.Service, p.Skip)
	}
	par := fmt.Sprint(p.Parallelism)
	if p.Parallelism == 0 {
		par = "all at once"
	}
	return fmt.Sprintf("%s (%s): replace every task, %s at a time, %s, delay %s, monitor %s, on failure %s",
		p.Service, p.Mode, par, p.Order, p.Delay, p.Monitor, p.FailureAction)
}
