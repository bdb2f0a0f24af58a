package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"

	"github.com/swarmkeep/swarmkeep/driver/metrics"
)

func init() {
	register("refresh", command{
		summary: "make the running plugin drop its cached copies (of NAME, or all) and read its backends again",
		usage: `Usage: swarmkeep refresh [NAME] [--backend NAME] [--plugin NAME] [--socket PATH]

Tells the plugin on this manager, through its root-only metrics socket (found
through the Docker API as swarmkeep status does), to forget what it holds of
NAME (every name without one): a Vault value changed outside swarmkeep is
read again by the next task instead of after CACHE_TTL. Copies are kept as
last-known-good, served only if the backend is then unreachable. An etcd
backend lists its store again; the local store has nothing to drop. Run it
on every manager (only the leader's plugin is asked, and leadership moves).

  --backend NAME  only this backend instance (default: all)
  --plugin NAME   the plugin (default swarmkeep:latest)
  --socket PATH   use this metrics socket and skip the Docker lookup
`,
		run: runRefresh,
	})
}

func runRefresh(env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("refresh", flag.ContinueOnError)
	name := fs.String("plugin", "swarmkeep:latest", "plugin name")
	socket := fs.String("socket", "", "metrics socket")
	inst := fs.String("backend", "", "backend instance")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return fmt.Errorf("%w: want at most one NAME", errUsage)
	}
	ctx, cancel := context.WithTimeout(context.Background(), statusTimeout)
	defer cancel()
	p := pluginInfo{Socket: *socket}
	if *socket == "" {
		if p, err = lookupPlugin(ctx, *name); err != nil {
			return err
		}
	}
	q := url.Values{}
	if *inst != "" {
		q.Set("backend", *inst)
	}
	if len(pos) == 1 {
		q.Set("name", pos[0])
	}
	rep, err := postRefresh(ctx, p.Socket, q)
	if err != nil {
		return err
	}
	for _, r := range rep.Refreshed {
		fmt.Fprintf(env.stdout, "%s: %s\n", r.Backend, r.Action)
	}
	return nil
}

// postRefresh asks for the refresh on the unix socket only: the loopback
// port refuses it.
func postRefresh(ctx context.Context, socket string, q url.Values) (metrics.RefreshReply, error) {
	c := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		},
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://swarmkeep/refresh?"+q.Encode(), nil)
	if err != nil {
		return metrics.RefreshReply{}, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return metrics.RefreshReply{}, unreachable(socket, err)
	}
	defer resp.Body.Close()
	var rep metrics.RefreshReply
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&rep); err != nil {
		return rep, fmt.Errorf("%s answered /refresh with HTTP %d and no refresh document; fix: upgrade the plugin to a version that serves refresh", socket, resp.StatusCode)
	}
	if rep.Error != "" || resp.StatusCode != http.StatusOK {
		return rep, fmt.Errorf("the plugin refused the refresh (HTTP %d): %s", resp.StatusCode, rep.Error)
	}
	return rep, nil
}
