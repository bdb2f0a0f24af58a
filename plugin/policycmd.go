package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/swarmkeep/swarmkeep/driver"
	"github.com/swarmkeep/swarmkeep/driver/policy"
)

// policyDefaultFile is where serve reads the access policy by default; the
// commands read the same path so that, on a manager, they judge as the
// plugin does.
const (
	policyDefaultFile = "/etc/swarmkeep/policy.yaml"
	envPolicyFile     = "SWARMKEEP_POLICY_FILE"
)

const policyUsage = `Usage: swarmkeep policy COMMAND [flags]

Works with the access policy: which services may read which stored names.
The policy file format is described in driver/policy/README.md.

Commands:
  explain   show whether a service may read a stored name, and why:
            swarmkeep policy explain --service NAME [--stack S] [--service-label K=V]...
                [--image IMG] [--node ID] [--file F] STORED_NAME
  check     validate a policy file:
            swarmkeep policy check [--file F]

Run swarmkeep policy COMMAND --help for a command's flags.
`

var policyExplainUsage = `Usage: swarmkeep policy explain --service NAME [flags] STORED_NAME

Prints whether a task of the service may read STORED_NAME (ALLOW or DENY),
the rule that decided and why, and which policy rules match the service.
It reads only the policy, never the store.

  --service NAME          the service name (required)
  --stack S               the service's stack (its com.docker.stack.namespace label)
  --service-label K=V     a service label; repeat for more
  --image IMG             the task image, as the engine sends it (name:tag@sha256:...)
  --node ID               the node ID the task is assigned to
  --file F                the policy file (env ` + envPolicyFile + `, default ` + policyDefaultFile + `);
                          a missing file means the built-in default policy
` + formatUsage("{{.Verdict}} {{.Rule}}", ".Verdict (ALLOW or DENY) .Allow .Stored .Rule .Reason\n"+
	"                 .Policy .PolicyHash .Note .Identity (.Service .Stack .Image .Node .ServiceLabels)\n"+
	"                 .MatchingRules") + `
Exit status: 0 ALLOW, 1 DENY, 2 a usage error, 3 the policy file cannot be
read or is invalid; so "swarmkeep policy explain ... && deploy" stops on a
denial.
`

const policyCheckUsage = `Usage: swarmkeep policy check [--file F]

Validates a policy file and prints a summary. Exits 1 with the first error,
which names the line, the rule and the field.

  --file F   the policy file (env ` + envPolicyFile + `, default ` + policyDefaultFile + `)
`

func init() {
	register("policy", command{
		summary: "explain or check the access policy (which services read which names)",
		usage:   policyUsage,
		run:     runPolicy,
	})
}

func runPolicy(env *cliEnv, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: want a command: explain or check", errUsage)
	}
	sub, rest := args[0], args[1:]
	var usage string
	var err error
	switch sub {
	case "explain":
		usage, err = policyExplainUsage, runPolicyExplain(env, rest)
	case "check":
		usage, err = policyCheckUsage, runPolicyCheck(env, rest)
	case "-h", "--help", "help":
		return flag.ErrHelp
	default:
		return fmt.Errorf("%w: unknown policy command (not shown: it could be a value): want explain or check", errUsage)
	}
	// --help shows the subcommand's usage; run() would show the group's.
	// Usage errors name the subcommand and get the group's usage, which
	// has both synopses.
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(env.stdout, usage)
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w", sub, err)
	}
	return nil
}

// labelFlags collects repeated --service-label K=V.
type labelFlags map[string]string

func (l labelFlags) String() string { return policy.FormatLabels(l) }

func (l labelFlags) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return errors.New("want KEY=VALUE")
	}
	if _, dup := l[k]; dup {
		return errors.New("a label key given twice")
	}
	l[k] = val
	return nil
}

func policyFileFlag(env *cliEnv, fset *flag.FlagSet) *string {
	file := policyDefaultFile
	if v := env.getenv(envPolicyFile); v != "" {
		file = v
	}
	return fset.String("file", file, "policy file")
}

func runPolicyExplain(env *cliEnv, args []string) error {
	fset := flag.NewFlagSet("policy explain", flag.ContinueOnError)
	file := policyFileFlag(env, fset)
	labels := labelFlags{}
	var req driver.Request
	var stack string
	fset.StringVar(&req.ServiceName, "service", "", "service name")
	fset.StringVar(&stack, "stack", "", "stack")
	fset.Var(labels, "service-label", "service label K=V")
	fset.StringVar(&req.TaskImage, "image", "", "task image")
	fset.StringVar(&req.NodeID, "node", "", "node ID")
	format, _ := formatFlag(fset, false)
	pos, err := parseArgs(fset, args)
	if err != nil {
		return err
	}
	if err := exactArgs(pos, 1, "one STORED_NAME"); err != nil {
		return err
	}
	out, err := parseFormat(*format)
	if err != nil {
		return err
	}
	if req.ServiceName == "" {
		return fmt.Errorf("%w: --service is required", errUsage)
	}
	// The stack is a service label to the plugin; set it the same way so
	// that rules on service_labels see what they will see in production.
	if stack != "" {
		if v, ok := labels[driver.StackNamespaceLabel]; ok && v != stack {
			return fmt.Errorf("%w: --stack contradicts --service-label %s=...: give one of them", errUsage, driver.StackNamespaceLabel)
		}
		labels[driver.StackNamespaceLabel] = stack
	}
	req.ServiceLabels = labels
	pol, note, err := loadPolicyOrDefault(*file)
	if err != nil {
		return &exitError{code: 3, err: err}
	}
	id := driver.IdentityOf(req)
	stored := pos[0]
	d := pol.Decide(id, stored)
	rep := explainReport{Allow: d.Allow, Verdict: "DENY", Stored: stored, Rule: d.Rule, Reason: d.Reason,
		Policy: pol.Source(), PolicyHash: pol.Hash(), Note: strings.TrimPrefix(note, "; "),
		Identity:      explainIdentity{Service: id.Service, Stack: id.Stack, Image: id.Image, Node: id.Node, ServiceLabels: id.ServiceLabels},
		MatchingRules: pol.Matches(id)}
	if d.Allow {
		rep.Verdict = "ALLOW"
	}
	if rep.MatchingRules == nil {
		rep.MatchingRules = []string{}
	}
	if err := out.print(env.stdout, rep, func(w io.Writer) error {
		fmt.Fprintf(w, "%s  %s\n", rep.Verdict, stored)
		fmt.Fprintf(w, "rule:     %s\n", policyDash(d.Rule))
		fmt.Fprintf(w, "reason:   %s\n", d.Reason)
		fmt.Fprintf(w, "policy:   %s (%s)%s\n", pol.Source(), pol.Hash(), note)
		fmt.Fprintf(w, "identity: service %s, stack %s, image %s, node %s, labels %s\n",
			id.Service, policyDash(id.Stack), policyDash(id.Image), policyDash(id.Node), policyDash(policy.FormatLabels(id.ServiceLabels)))
		_, err := fmt.Fprintf(w, "matching rules: %s\n", policyDash(strings.Join(rep.MatchingRules, ", ")))
		return err
	}); err != nil {
		return err
	}
	if !d.Allow {
		// A denial is the answer, not a failure to give one, but a
		// script must not read it as a green light.
		return &exitError{code: 1, err: errors.New("denied")}
	}
	return nil
}

// explainReport is what policy explain --format shows.
type explainReport struct {
	Verdict       string          `json:"verdict"`
	Allow         bool            `json:"allow"`
	Stored        string          `json:"stored"`
	Rule          string          `json:"rule,omitempty"`
	Reason        string          `json:"reason"`
	Policy        string          `json:"policy"`
	PolicyHash    string          `json:"policy_hash"`
	Note          string          `json:"note,omitempty"`
	Identity      explainIdentity `json:"identity"`
	MatchingRules []string        `json:"matching_rules"`
}

type explainIdentity struct {
	Service       string            `json:"service"`
	Stack         string            `json:"stack,omitempty"`
	Image         string            `json:"image,omitempty"`
	Node          string            `json:"node,omitempty"`
	ServiceLabels map[string]string `json:"service_labels,omitempty"`
}

// loadPolicyOrDefault loads file as the plugin would: a missing file is the
// built-in default, and the returned note says so.
func loadPolicyOrDefault(file string) (*policy.Policy, string, error) {
	pol, err := policy.Load(file)
	if errors.Is(err, fs.ErrNotExist) {
		return policy.Default(), "; " + file + " does not exist, so the built-in default applies", nil
	}
	if err != nil {
		return nil, "", err
	}
	return pol, "", nil
}

func runPolicyCheck(env *cliEnv, args []string) error {
	fset := flag.NewFlagSet("policy check", flag.ContinueOnError)
	file := policyFileFlag(env, fset)
	pos, err := parseArgs(fset, args)
	if err != nil {
		return err
	}
	if err := exactArgs(pos, 0, "no arguments"); err != nil {
		return err
	}
	pol, err := policy.Load(*file)
	if errors.Is(err, fs.ErrNotExist) {
		// The plugin would run with the built-in default, but a check of a
		// file that is not there is most likely a wrong path.
		return fmt.Errorf("%w (without a file the plugin applies the built-in default policy)", err)
	}
	if err != nil {
		return err
	}
	printPolicySummary(env.stdout, pol)
	return nil
}

func printPolicySummary(w io.Writer, pol *policy.Policy) {
	mode := "stack (built-in rules apply)"
	if pol.DenyByDefault() {
		mode = "deny (only the file grants)"
	}
	names := pol.RuleNames()
	fmt.Fprintf(w, "ok: %s\nhash:    %s\ndefault: %s\nrules:   %d", pol.Source(), pol.Hash(), mode, len(names))
	if len(names) > 0 {
		fmt.Fprintf(w, " (%s)", strings.Join(names, ", "))
	}
	fmt.Fprintln(w)
}

func policyDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
