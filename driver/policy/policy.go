package policy

import (
	"strings"
)

// Rule names the policy puts in a Decision when no file rule decided.
const (
	RuleShared         = "shared"
	RuleStackNamespace = "default:stack-namespace"
	RuleTopLevel       = "default:top-level"
)

// Identity is who asks: the requesting service, never the secret. Every
// field comes from the service spec and the task the leader is assigning.
type Identity struct {
	// Stack is the service's com.docker.stack.namespace label, "" if none.
	Stack string
	// Service is the service name.
	Service string
	// ServiceLabels are the service's labels. Not copied: treat as read-only.
	ServiceLabels map[string]string
	// Image is the task's image reference, possibly with "@sha256:...".
	Image string
	// Node is the ID of the node the task is assigned to.
	Node string
}

// Decider answers access questions: a fixed *Policy, or a *Watcher that
// follows the policy file. The driver asks it on every request.
type Decider interface {
	Decide(id Identity, stored string) Decision
}

// Decision is the answer for one identity and stored name.
type Decision struct {
	Allow bool
	// Rule is the file rule that decided, RuleShared, RuleStackNamespace,
	// RuleTopLevel, or "" when nothing granted.
	Rule string
	// Reason is one line for logs and explain. It names patterns, never a
	// value, and does not depend on whether the name exists.
	Reason string
}

// Policy is a compiled policy. It is immutable, so one value is shared by
// every request without locks.
type Policy struct {
	source, hash string
	denyDefault  bool // default: deny
	shared       []pattern
	rules        []rule
}

// pattern is a stored-name glob with the Reason it gives, built at load so
// that Decide does not allocate.
type pattern struct {
	glob   *Glob
	reason string
}

type rule struct {
	name                        string
	stack, service, image, node *Glob // nil: any
	labels                      []labelCond
	allow, deny                 []pattern
}

type labelCond struct {
	key  string
	glob *Glob
}

// defaultShared is the shared list when a file gives none.
var defaultShared = []string{"shared/**"}

var builtin = mustBuiltin()

func mustBuiltin() *Policy {
	p := &Policy{source: "built-in default", hash: "builtin"}
	for _, s := range defaultShared {
		g, err := CompileGlob(s)
		if err != nil {
			panic(err)
		}
		p.shared = append(p.shared, sharedPattern(g))
	}
	return p
}

func sharedPattern(g *Glob) pattern {
	return pattern{glob: g, reason: g.src + " is shared with every service"}
}

// Default returns the built-in policy that applies when there is no file.
func Default() *Policy { return builtin }

// Source names where the policy came from: a file path or "built-in default".
func (p *Policy) Source() string { return p.source }

// Hash identifies the policy's content: "sha256:<hex>" of the file, or
// "builtin", so health output and config hashes show which one is active.
func (p *Policy) Hash() string { return p.hash }

// RuleNames lists the file's rules in order.
func (p *Policy) RuleNames() []string {
	out := make([]string, len(p.rules))
	for i := range p.rules {
		out[i] = p.rules[i].name
	}
	return out
}

// DenyByDefault reports whether the file says "default: deny".
func (p *Policy) DenyByDefault() bool { return p.denyDefault }

// Decide says whether id may read the stored name. It looks only at the
// policy, never at the store, so a denial tells nothing about existence.
// Order: a deny pattern of any matching rule; the first matching rule's
// allow pattern; the shared list; the built-in defaults; else deny.
func (p *Policy) Decide(id Identity, stored string) Decision {
	if !canonical(stored) {
		// "payments/../admin" must not pass as payments/**: a backend
		// that joins paths could resolve it elsewhere.
		return Decision{Reason: `stored name has an empty, "." or ".." segment`}
	}
	var grant *pattern
	var grantRule string
	for i := range p.rules {
		r := &p.rules[i]
		if !r.matches(id) {
			continue
		}
		for j := range r.deny {
			if r.deny[j].glob.Match(stored) {
				return Decision{Rule: r.name, Reason: r.deny[j].reason}
			}
		}
		if grant != nil {
			continue
		}
		for j := range r.allow {
			if r.allow[j].glob.Match(stored) {
				grant, grantRule = &r.allow[j], r.name
				break
			}
		}
	}
	if grant != nil {
		return Decision{Allow: true, Rule: grantRule, Reason: grant.reason}
	}
	for i := range p.shared {
		if p.shared[i].glob.Match(stored) {
			return Decision{Allow: true, Rule: RuleShared, Reason: p.shared[i].reason}
		}
	}
	if !p.denyDefault {
		if id.Stack == "" && !strings.Contains(stored, "/") {
			return Decision{Allow: true, Rule: RuleTopLevel, Reason: "a service in no stack may read top-level names"}
		}
		if validStack(id.Stack) && len(stored) > len(id.Stack)+1 &&
			stored[len(id.Stack)] == '/' && stored[:len(id.Stack)] == id.Stack {
			return Decision{Allow: true, Rule: RuleStackNamespace, Reason: "a service may read names under its own stack (STACK/**)"}
		}
	}
	return Decision{Reason: "no rule grants it"}
}

// Matches lists the rules whose match conditions hold for id, for explain.
func (p *Policy) Matches(id Identity) []string {
	var out []string
	for i := range p.rules {
		if p.rules[i].matches(id) {
			out = append(out, p.rules[i].name)
		}
	}
	return out
}

func (r *rule) matches(id Identity) bool {
	if r.stack != nil && !r.stack.Match(id.Stack) ||
		r.service != nil && !r.service.Match(id.Service) ||
		r.image != nil && !r.image.Match(id.Image) ||
		r.node != nil && !r.node.Match(id.Node) {
		return false
	}
	for _, c := range r.labels {
		v, ok := id.ServiceLabels[c.key]
		if !ok || !c.glob.Match(v) {
			return false
		}
	}
	return true
}

// canonical: no leading, trailing or doubled '/', no "." or ".." segment.
func canonical(name string) bool {
	for {
		seg, rest, more := strings.Cut(name, "/")
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
		if !more {
			return true
		}
		name = rest
	}
}

// validStack: a stack namespace is one name segment. A service label that
// claims "a/b" or ".." as its stack gets no namespace at all.
func validStack(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.Contains(s, "/")
}
