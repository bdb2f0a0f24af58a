package main

import (
	"context"
	"flag"
	"fmt"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/swarmkeep/swarmkeep/driver/server"
)

// trimAfter is when serve drops the start-up page mappings of its
// executable (see trimExecutable).
const trimAfter = 2 * time.Second

// servingGCPercent is serve's GC target (GOGC), unless GOGC is set.
const servingGCPercent = 150

func init() {
	register("serve", command{
		summary: "run the plugin: answer the engine on the plugin socket",
		usage: `Usage: swarmkeep serve [--stay-up]

Runs the secretprovider plugin. This is the managed plugin's entrypoint; it
reads its settings from the environment (config.json's Env, changed with
docker plugin set):

` + server.Usage() + `
It stops on SIGTERM or SIGINT after the requests in flight are answered. It
reopens the audit trail on SIGHUP, and notices a rotation by itself within 1s.

  --stay-up   when a setting is wrong, or the audit trail or the access policy
              cannot be opened, keep the plugin socket and answer every request
              with the cause and the fix (/health says degraded with it)
              instead of exiting; the managed plugin's entrypoint sets it, since
              docker plugin enable would only say "dial unix ...: no such file"
`,
		run: runServe,
	})
}

func runServe(env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	stayUp := fs.Bool("stay-up", false, "answer with the cause when broken")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := exactArgs(pos, 0, "no arguments"); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	cfg, err := server.Load(env.getenv)
	if err != nil {
		err = fmt.Errorf("bad settings (fix with docker plugin set): %w", err)
		if *stayUp {
			return serveBroken(ctx, env, err)
		}
		return err
	}
	if env.getenv("GOGC") == "" {
		// The live heap is small (records are cached outside it), so the
		// GC runs often under load and costs per request: 50 ran it twice
		// as often as 100, a fifth more CPU per request at c=8 (1,720
		// instead of 1,360 ms per 10,000 requests). 150 saves about 4%
		// more at 2 MiB more RSS with 10,000 names (22.6 MiB, bound 25);
		// 200 took 24.8 MiB and 400 32.6 MiB.
		debug.SetGCPercent(servingGCPercent)
	}
	// Info and debug lines to stdout, the rest to stderr: the engine logs
	// the two streams at info and error (see server.NewEngineLogger).
	// Audit copies (AUDIT_STDERR) are records, not errors: stdout too.
	log := server.NewEngineLogger(env.stdout, env.stderr, cfg.LogLevel)
	srv, err := server.New(cfg, server.Options{Log: log, Stderr: env.stdout, Version: version})
	if err != nil {
		if *stayUp {
			return serveBroken(ctx, env, err)
		}
		return err
	}
	// Once started and serving, not before: start-up is measured to the
	// socket, and the first requests fault in what they need anyway.
	trim := time.AfterFunc(trimAfter, trimExecutable)
	defer trim.Stop()
	serveErr := srv.Serve(ctx)
	if ctx.Err() != nil {
		log.Info("stopping on signal")
	}
	if err := srv.Close(); err != nil && serveErr == nil {
		log.Warnf("closing: %v", err)
	}
	return serveErr
}

// serveBroken answers every request with cause until a signal: the plugin
// cannot serve, and exiting would leave the operator with docker plugin
// enable's "dial unix" (see server.Broken).
func serveBroken(ctx context.Context, env *cliEnv, cause error) error {
	log := server.NewEngineLogger(env.stdout, env.stderr, logrus.InfoLevel)
	if err := server.NewBroken(env.getenv, cause, log, version).Serve(ctx); err != nil {
		// Not even the socket: the engine's dial error is all that is
		// left, and this line in its log.
		return fmt.Errorf("%w (and %v)", cause, err)
	}
	if ctx.Err() != nil {
		log.Info("stopping on signal")
	}
	return nil
}
