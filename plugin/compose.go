package main

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/swarmkeep/swarmkeep/driver"
	"github.com/swarmkeep/swarmkeep/swarm/rollout"
	"go.yaml.in/yaml/v3"
)

// The subset of a compose file that decides what docker stack deploy does
// with secrets. Only these fields are read; everything else (networks,
// x- extensions, unknown keys) is ignored, as the check is not a validator
// of the whole file.
type composeFile struct {
	Version  string                    `yaml:"version"`
	Services map[string]composeService `yaml:"services"`
	Secrets  map[string]composeSecret  `yaml:"secrets"`
}

type composeService struct {
	Image   string          `yaml:"image"`
	Secrets []serviceSecret `yaml:"secrets"`
	// Service labels come from deploy.labels: the top-level labels key
	// labels containers, and the engine sends the service spec's labels.
	Deploy struct {
		Labels labelMap `yaml:"labels"`
	} `yaml:"deploy"`
}

type composeSecret struct {
	Name           string            `yaml:"name"`
	File           string            `yaml:"file"`
	Environment    string            `yaml:"environment"`
	External       externalField     `yaml:"external"`
	Labels         labelMap          `yaml:"labels"`
	Driver         string            `yaml:"driver"`
	DriverOpts     map[string]string `yaml:"driver_opts"`
	TemplateDriver string            `yaml:"template_driver"`
}

// serviceSecret is one entry of a service's secrets: the short form is the
// bare secret key, the long form a mapping with source and target.
type serviceSecret struct {
	Source, Target string
}

func (s *serviceSecret) UnmarshalYAML(n *yaml.Node) error {
	n = deref(n)
	if n.Kind == yaml.ScalarNode {
		s.Source = n.Value
		return nil
	}
	var long struct {
		Source string `yaml:"source"`
		Target string `yaml:"target"`
	}
	if err := n.Decode(&long); err != nil {
		return fmt.Errorf("line %d: a service secret is a name or a mapping with source: %w", n.Line, err)
	}
	if long.Source == "" {
		return fmt.Errorf("line %d: a service secret mapping needs source", n.Line)
	}
	*s = serviceSecret{long.Source, long.Target}
	return nil
}

// labelMap accepts both compose forms, a mapping or a list of "k=v", and
// scalar values of any type (compose stringifies numbers and booleans).
type labelMap map[string]string

func (l *labelMap) UnmarshalYAML(n *yaml.Node) error {
	out := labelMap{}
	n = deref(n)
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], deref(n.Content[i+1])
			if k.Tag == "!!merge" {
				// "<<: *common": the anchored labels, overridden by
				// the keys written here (they come later).
				var base labelMap
				if err := base.UnmarshalYAML(v); err != nil {
					return err
				}
				for bk, bv := range base {
					if _, ok := out[bk]; !ok {
						out[bk] = bv
					}
				}
				continue
			}
			if v.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: label %s: want a string value", v.Line, k.Value)
			}
			if v.Tag == "!!null" {
				out[k.Value] = ""
			} else {
				out[k.Value] = v.Value
			}
		}
	case yaml.SequenceNode:
		for _, e := range n.Content {
			e = deref(e)
			if e.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: a label list holds key=value strings", e.Line)
			}
			k, v, _ := strings.Cut(e.Value, "=")
			out[k] = v
		}
	default:
		return fmt.Errorf("line %d: labels are a mapping or a list of key=value", n.Line)
	}
	*l = out
	return nil
}

// deref follows a YAML alias (*name) to its anchored node.
func deref(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

// externalField is external: true, or the legacy external: {name: x}.
type externalField struct {
	External bool
	Name     string
}

func (e *externalField) UnmarshalYAML(n *yaml.Node) error {
	n = deref(n)
	if n.Kind == yaml.ScalarNode {
		return n.Decode(&e.External)
	}
	var m struct {
		Name string `yaml:"name"`
	}
	if err := n.Decode(&m); err != nil {
		return fmt.Errorf("line %d: external is true, false or a mapping with name: %w", n.Line, err)
	}
	*e = externalField{External: true, Name: m.Name}
	return nil
}

// parseCompose reads one compose document, with its variables interpolated
// from lookup as the docker CLI does (nil: none). unset names the variables
// that were not set and became blank strings.
func parseCompose(data []byte, lookup func(string) (string, bool)) (cf *composeFile, unset []string, err error) {
	// The YAML library has panicked on hostile input before: a bad file
	// must be an error line, not a crash.
	defer func() {
		if r := recover(); r != nil {
			cf, unset, err = nil, nil, fmt.Errorf("compose file: yaml parser failed: %v", r)
		}
	}()
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, nil, fmt.Errorf("compose file: %w", err)
	}
	if lookup != nil {
		if unset, err = interpolateNode(&doc, lookup); err != nil {
			return nil, nil, fmt.Errorf("compose file: %w", err)
		}
	}
	cf = &composeFile{}
	if len(doc.Content) > 0 {
		if err := doc.Decode(cf); err != nil {
			return nil, nil, fmt.Errorf("compose file: %w", err)
		}
	}
	if cf.Services == nil && cf.Secrets == nil {
		return nil, nil, errors.New("compose file: no services and no secrets")
	}
	return cf, unset, nil
}

// checkVersion: docker stack deploy validates against the schema of the
// declared version, and driver, driver_opts and template_driver only exist
// from 3.8; an older version fails the deploy with "Additional property".
func checkVersion(v string) error {
	if v == "" {
		return nil // the CLI then uses its latest schema
	}
	major, minor, _ := strings.Cut(v, ".")
	ma, err1 := strconv.Atoi(major)
	mi, err2 := strconv.Atoi(minor)
	if minor == "" {
		mi, err2 = 0, nil
	}
	if err1 != nil || err2 != nil {
		return fmt.Errorf("compose version %q is not a version number", v)
	}
	if ma < 3 || ma == 3 && mi < 8 {
		return fmt.Errorf("compose version %s predates secret drivers: docker stack deploy refuses driver below 3.8 (set version: \"3.8\" or drop version)", v)
	}
	return nil
}

// swarmNameRE is swarmkit's rule for object names; longer than 64 bytes or
// anything else, and the secret create fails mid-deploy.
var swarmNameRE = regexp.MustCompile(`^[a-zA-Z0-9](?:[a-zA-Z0-9_.-]*[a-zA-Z0-9])?$`)

func validSwarmName(s string) bool { return len(s) <= 64 && swarmNameRE.MatchString(s) }

// plannedSecret is one compose secret as docker stack deploy will create it.
type plannedSecret struct {
	Key       string
	SwarmName string
	Labels    map[string]string
	External  bool
	Driver    string
	Ours      bool // driven by the plugin being checked
	Template  bool
	Services  []string // compose service keys using it, sorted
}

// plan is what the compose file asks of Swarm, before anything is read.
type plan struct {
	Secrets  []plannedSecret
	Errors   []string
	Warnings []string
	Notes    []string
}

// samePlugin compares driver names the way the engine resolves them: a
// name without a tag means :latest. One rule for check, uses and rollout.
func samePlugin(a, b string) bool { return rollout.SamePlugin(a, b) }

// anyPlugin reports whether driver names one of plugins.
func anyPlugin(driver string, plugins []string) bool {
	for _, p := range plugins {
		if samePlugin(driver, p) {
			return true
		}
	}
	return false
}

// planCheck applies docker stack deploy's naming and labelling to the
// compose secrets and collects what Swarm would refuse or silently drop.
func planCheck(cf *composeFile, stack string, plugins []string) plan {
	var p plan
	errf := func(f string, a ...any) { p.Errors = append(p.Errors, fmt.Sprintf(f, a...)) }
	warnf := func(f string, a ...any) { p.Warnings = append(p.Warnings, fmt.Sprintf(f, a...)) }
	for _, sec := range cf.Secrets {
		// Only the driver fields need 3.8: an older file without them
		// deploys, and is simply none of this check's business.
		if sec.Driver != "" || len(sec.DriverOpts) > 0 || sec.TemplateDriver != "" {
			if err := checkVersion(cf.Version); err != nil {
				errf("%v", err)
			}
			break
		}
	}
	users := map[string][]string{}
	for _, svc := range sortedNames(cf.Services) {
		for _, ref := range cf.Services[svc].Secrets {
			if _, ok := cf.Secrets[ref.Source]; !ok {
				errf("service %s uses secret %s, which the top-level secrets: does not declare", svc, ref.Source)
				continue
			}
			users[ref.Source] = append(users[ref.Source], svc)
		}
	}
	for _, key := range sortedNames(cf.Secrets) {
		s := cf.Secrets[key]
		ps := plannedSecret{Key: key, External: s.External.External, Driver: s.Driver,
			Ours: anyPlugin(s.Driver, plugins), Template: s.TemplateDriver != "", Services: users[key]}
		if s.Driver != "" && !ps.Ours && strings.Contains(s.Driver, "swarmkeep") {
			warnf("secret %s: driver %s is not the checked plugin %s (use --plugin); not checked", key, s.Driver, strings.Join(plugins, ", "))
		}
		if ps.External {
			// Swarm looks external secrets up by name, unprefixed, and
			// the deploy neither creates nor labels them.
			ps.SwarmName = firstNonEmpty(s.External.Name, s.Name, key)
			if ps.Ours || s.Driver == "" {
				warnf("secret %s: external, so not created by this deploy; swarm secret %s must already exist (its driver and labels are not in this file, so check cannot resolve it)", key, ps.SwarmName)
			}
			ps.Ours = false
			p.Secrets = append(p.Secrets, ps)
			continue
		}
		ps.SwarmName = firstNonEmpty(s.Name, stack+"_"+key)
		if s.Name != "" && ps.Ours {
			// A fixed name is shared by every stack deployed from this
			// file: the last deploy relabels it, namespace included.
			p.Notes = append(p.Notes, fmt.Sprintf("secret %s: name: %s is used as is, without the %s_ prefix; another stack deployed from this file shares it", key, s.Name, stack))
		}
		ps.Labels = map[string]string{}
		for k, v := range s.Labels {
			ps.Labels[k] = v
		}
		ps.Labels[driver.StackNamespaceLabel] = stack
		if s.Driver == "" && s.File == "" && s.Environment == "" {
			// Usually an override file that only adds labels: it
			// replaces the secret whole, driver: included.
			errf("secret %s: neither driver, file nor environment: the docker CLI reads it as file: . and the deploy fails; "+
				"an override file (-c) replaces a secret as a whole, so repeat driver: and every label there", key)
		}
		if !ps.Ours {
			p.Secrets = append(p.Secrets, ps)
			continue
		}
		if s.File != "" || s.Environment != "" {
			errf("secret %s: driver together with file or environment: docker stack deploy refuses it (drop file:, the plugin supplies the value)", key)
		}
		if !validSwarmName(ps.SwarmName) {
			errf("secret %s: swarm name %q is invalid: Swarm wants at most 64 letters, digits, '_', '.' or '-', starting and ending with a letter or digit", key, ps.SwarmName)
		}
		if len(s.DriverOpts) > 0 {
			warnf("secret %s: driver_opts (%s) are stored by Swarm but never sent to the plugin; use swarmkeep.* labels instead", key, strings.Join(sortedNames(s.DriverOpts), ", "))
		}
		if ps.Template {
			warnf("secret %s: template_driver %s expands the plugin's value as a template: a value containing {{ is rewritten or fails the task", key, s.TemplateDriver)
		}
		if len(ps.Services) == 0 {
			warnf("secret %s: used by no service; docker stack deploy creates it anyway and nothing will read it", key)
		}
		p.Secrets = append(p.Secrets, ps)
	}
	return p
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
