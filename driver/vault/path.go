package vault

import (
	"errors"
	"fmt"
	"strings"
	"text/template"
	"text/template/parse"
	"unicode"

	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// templateData is what path_template sees. Field names are part of the
// plugin's documented interface: do not rename them.
type templateData struct {
	// Name is the stored name (swarmkeep.name, or the secret's name less
	// its stack prefix).
	Name string
	// Secret is the secret's full name.
	Secret string
	// Stack is the com.docker.stack.namespace label, if any.
	Stack string
	// Service is the requesting service's name.
	Service string
	// Labels are the secret's labels.
	Labels map[string]string
}

// pathTemplate maps a request to a KV path.
type pathTemplate struct {
	t *template.Template
	// varies is set when the template may read the requesting service, so
	// one secret can resolve to different paths for different tasks.
	varies bool
}

// parsePathTemplate parses and trial-runs src. The trial catches a field
// that does not exist (.Servce) at open rather than at the first request;
// it tolerates missing labels, which only a real secret can supply.
func parsePathTemplate(src string) (*pathTemplate, error) {
	t, err := template.New("path_template").Option("missingkey=error").Parse(src)
	if err != nil {
		return nil, err
	}
	trial, err := template.New("path_template").Option("missingkey=zero").Parse(src)
	if err != nil {
		return nil, err
	}
	data := templateData{Name: "name", Secret: "secret", Stack: "stack", Service: "service", Labels: map[string]string{}}
	if err := trial.Execute(new(strings.Builder), data); err != nil {
		return nil, err
	}
	return &pathTemplate{t: t, varies: readsService(t.Tree.Root)}, nil
}

// execute renders the path for ref.
func (p *pathTemplate) execute(ref backend.Ref) (string, error) {
	labels := ref.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	var b strings.Builder
	err := p.t.Execute(&b, templateData{Name: ref.Name, Secret: ref.Secret, Stack: ref.Stack, Service: ref.Service, Labels: labels})
	if err != nil {
		return "", fmt.Errorf("%w: path_template: %w", backend.ErrInvalidRef, err)
	}
	return b.String(), nil
}

// readsService reports whether a template may read .Service. It errs on
// the side of yes: a bare "." or "$" hands the whole request to a function
// or a nested scope, and any field named Service counts, even inside a
// with block where it would mean something else. A wrong yes only costs a
// per-task copy; a wrong no would hand one service another's value.
func readsService(n parse.Node) bool {
	switch n := n.(type) {
	case nil:
		return false
	case *parse.ListNode:
		if n == nil {
			return false
		}
		for _, c := range n.Nodes {
			if readsService(c) {
				return true
			}
		}
	case *parse.ActionNode:
		return readsService(n.Pipe)
	case *parse.PipeNode:
		if n == nil {
			return false
		}
		for _, c := range n.Cmds {
			if readsService(c) {
				return true
			}
		}
	case *parse.CommandNode:
		for _, a := range n.Args {
			if readsService(a) {
				return true
			}
		}
	case *parse.FieldNode:
		return containsService(n.Ident)
	case *parse.ChainNode:
		return containsService(n.Field) || readsService(n.Node)
	case *parse.VariableNode:
		return len(n.Ident) == 1 && n.Ident[0] == "$" || containsService(n.Ident)
	case *parse.DotNode:
		return true
	case *parse.IfNode:
		return readsService(n.Pipe) || readsService(n.List) || readsService(n.ElseList)
	case *parse.RangeNode:
		return readsService(n.Pipe) || readsService(n.List) || readsService(n.ElseList)
	case *parse.WithNode:
		return readsService(n.Pipe) || readsService(n.List) || readsService(n.ElseList)
	case *parse.TemplateNode:
		return true // a nested template gets the data passed to it
	}
	return false
}

func containsService(idents []string) bool {
	for _, id := range idents {
		if id == "Service" {
			return true
		}
	}
	return false
}

var errBadPath = errors.New("bad path")

// checkPath refuses a path that could step out of the mount or that the
// server would normalise into another one: '..', a leading '/', empty or
// "." segments, and characters a URL path or the engine's error line would
// mangle.
func checkPath(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("%w: it is empty", errBadPath)
	case len(p) > 512:
		return fmt.Errorf("%w: it is longer than 512 bytes", errBadPath)
	case strings.HasPrefix(p, "/"):
		return fmt.Errorf("%w: %q starts with '/'", errBadPath, p)
	case strings.Contains(p, ".."):
		return fmt.Errorf("%w: %q contains '..'", errBadPath, p)
	case strings.ContainsAny(p, "?#%\\"):
		return fmt.Errorf("%w: %q contains '?', '#', '%%' or '\\'", errBadPath, p)
	case strings.IndexFunc(p, func(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) }) >= 0:
		return fmt.Errorf("%w: %q contains white space or a control character", errBadPath, p)
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." {
			return fmt.Errorf("%w: %q has an empty or '.' segment", errBadPath, p)
		}
	}
	return nil
}
