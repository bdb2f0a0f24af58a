package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/docker/docker/api/types/filters"
)

// pluginSocket is the socket config.json declares: a secret provider
// plugin with it is swarmkeep, whatever name it was installed under.
const pluginSocket = "swarmkeep.sock"

// fileList collects repeated -c flags, as docker stack deploy takes them.
type fileList []string

func (f *fileList) String() string { return strings.Join(*f, ",") }

func (f *fileList) Set(v string) error {
	*f = append(*f, v)
	return nil
}

// loadComposeFiles reads, interpolates and merges the -c files in order.
// A file that is not a compose file is a report error (nil file); one that
// cannot be read is the command's error.
func loadComposeFiles(env *cliEnv, files []string, rep *checkReport) (*composeFile, error) {
	var parsed []*composeFile
	unset := map[string]bool{}
	stdinUsed := false
	for _, name := range files {
		var data []byte
		var err error
		if name == "-" {
			if stdinUsed {
				return nil, fmt.Errorf("%w: -c - (stdin) given twice", errUsage)
			}
			stdinUsed = true
			data, err = io.ReadAll(io.LimitReader(env.stdin, 16<<20))
		} else {
			data, err = os.ReadFile(name)
		}
		if err != nil {
			return nil, err
		}
		cf, miss, err := parseCompose(data, env.lookup)
		if err != nil {
			rep.Errors = append(rep.Errors, fmt.Sprintf("%s: %v", name, err))
			return nil, nil
		}
		for _, m := range miss {
			unset[m] = true
		}
		parsed = append(parsed, cf)
	}
	for _, m := range sortedNames(unset) {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("variable %s is not set: docker stack deploy substitutes a blank string, and so did check", m))
	}
	if len(parsed) > 1 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%d compose files merged as docker stack deploy merges them: a later file overrides an earlier one's keys", len(parsed)))
	}
	return mergeCompose(parsed), nil
}

// mergeCompose merges the files of docker stack deploy -c a.yml -c b.yml
// as the CLI does: a later file overrides an earlier one key by key. A
// service is merged field by field (its secrets by source, its deploy
// labels by key); a top-level secret is replaced as a whole.
func mergeCompose(files []*composeFile) *composeFile {
	out := &composeFile{Services: map[string]composeService{}, Secrets: map[string]composeSecret{}}
	for _, f := range files {
		if f.Version != "" {
			out.Version = f.Version
		}
		for k, s := range f.Secrets {
			out.Secrets[k] = s
		}
		for k, s := range f.Services {
			base, ok := out.Services[k]
			if !ok {
				out.Services[k] = s
				continue
			}
			if s.Image != "" {
				base.Image = s.Image
			}
			base.Secrets = mergeServiceSecrets(base.Secrets, s.Secrets)
			if len(s.Deploy.Labels) > 0 {
				labels := labelMap{}
				for lk, lv := range base.Deploy.Labels {
					labels[lk] = lv
				}
				for lk, lv := range s.Deploy.Labels {
					labels[lk] = lv
				}
				base.Deploy.Labels = labels
			}
			out.Services[k] = base
		}
	}
	return out
}

// mergeServiceSecrets unions two lists of a service's secrets by source,
// the later entry replacing an earlier one with the same source.
func mergeServiceSecrets(base, over []serviceSecret) []serviceSecret {
	out := append([]serviceSecret(nil), base...)
	for _, o := range over {
		replaced := false
		for i := range out {
			if out[i].Source == o.Source {
				out[i], replaced = o, true
			}
		}
		if !replaced {
			out = append(out, o)
		}
	}
	return out
}

// resolvePluginNames returns the driver names to check: --plugin if given,
// else the names the swarmkeep plugin is installed under here (Docker's
// answer), else "swarmkeep". A plugin installed as myorg/swarmkeep:1.2 is
// named so in compose files, and checking "swarmkeep" would check nothing.
func resolvePluginNames(explicit string, rep *checkReport) []string {
	if explicit != "" {
		return []string{explicit}
	}
	const fallback = "swarmkeep"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	api, err := newPluginAPI()
	if err == nil {
		defer api.Close()
		var names []string
		var list []string
		list, names, err = installedPlugins(ctx, api)
		if err == nil && len(names) > 0 {
			rep.Notes = append(rep.Notes, fmt.Sprintf("checking driver: %s, the name the plugin is installed under here (give --plugin NAME to check another)", strings.Join(names, ", ")))
			return names
		}
		if err == nil {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("no swarmkeep plugin is installed on this host (secret providers: %s); checking driver: %s (give --plugin NAME)", orDash(strings.Join(list, ", ")), fallback))
			return []string{fallback}
		}
	}
	rep.Notes = append(rep.Notes, fmt.Sprintf("could not ask Docker which name the plugin is installed under (%v); checking driver: %s (give --plugin NAME)", err, fallback))
	return []string{fallback}
}

// installedPlugins lists the secret provider plugins, and which of them
// are swarmkeep (by the socket they declare).
func installedPlugins(ctx context.Context, api pluginAPI) (all, ours []string, err error) {
	ps, err := api.PluginList(ctx, filters.NewArgs(filters.Arg("capability", "secretprovider")))
	if err != nil {
		return nil, nil, err
	}
	for _, p := range ps {
		all = append(all, p.Name)
		if isSwarmkeep(p) {
			ours = append(ours, p.Name)
		}
	}
	sort.Strings(all)
	sort.Strings(ours)
	return all, ours, nil
}

// otherDrivers are the distinct drivers of the file's secrets.
func otherDrivers(secrets []plannedSecret) []string {
	seen := map[string]bool{}
	for _, s := range secrets {
		if s.Driver != "" {
			seen[s.Driver] = true
		}
	}
	return sortedNames(seen)
}
