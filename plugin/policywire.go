package main

import (
	"github.com/swarmkeep/swarmkeep/driver"
	"github.com/swarmkeep/swarmkeep/driver/policy"
)

// EnvPolicyFile names the access policy file serve reads (and reloads when
// it changes); a missing file means the built-in default policy.
const EnvPolicyFile = "POLICY_FILE"

// decider is what answers an access question: a fixed *policy.Policy (check,
// explain) or a *policy.Watcher that follows the file (serve).
type decider interface {
	Decide(id policy.Identity, stored string) policy.Decision
}

// policyAuthorizer adapts the policy to the driver, which cannot import it
// (the policy reads the driver's request type).
type policyAuthorizer struct{ p decider }

func (a policyAuthorizer) Authorize(req *driver.Request, spec driver.Spec) driver.Decision {
	d := a.p.Decide(policy.IdentityOf(*req), spec.Name)
	return driver.Decision{Allow: d.Allow, Rule: d.Rule, Reason: d.Reason}
}
