package policy

import "github.com/swarmkeep/swarmkeep/driver"

// Decider answers access questions: a fixed *Policy, or a *Watcher that
// follows the policy file.
type Decider interface {
	Decide(id Identity, stored string) Decision
}

// Authorizer adapts d to the driver, which cannot import this package (the
// policy reads the driver's request type). The engine-facing error stays
// generic; the rule and reason go to the event for the log and the audit.
func Authorizer(d Decider) driver.Authorizer { return authorizer{d} }

type authorizer struct{ d Decider }

func (a authorizer) Authorize(req *driver.Request, spec driver.Spec) driver.Decision {
	d := a.d.Decide(IdentityOf(*req), spec.Name)
	return driver.Decision{Allow: d.Allow, Rule: d.Rule, Reason: d.Reason}
}
