package main

import (
	"context"
	"flag"
	"fmt"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/server"
)

// trimAfter is when serve drops the start-up page mappings of its
// executable (see trimExecutable).
const trimAfter = 2 * time.Second

// servingGCPercent is serve's GC target (GOGC), unless GOGC is set.
const servingGCPercent = 100

func init() {
	register("serve", command{
		summary: "run the plugin: answer the engine on the plugin socket",
		usage: `Usage: swarmkeep serve

Runs the secretprovider plugin. This is the managed plugin's entrypoint; it
reads its settings from the environment (config.json's Env, changed with
docker plugin set):

` + server.Usage() + `
It stops on SIGTERM or SIGINT after the requests in flight are answered. It
reopens the audit trail on SIGHUP, and notices a rotation by itself within 1s.
`,
		run: runServe,
	})
}

func runServe(env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := exactArgs(pos, 0, "no arguments"); err != nil {
		return err
	}
	cfg, err := server.Load(env.getenv)
	if err != nil {
		return fmt.Errorf("bad settings (fix with docker plugin set): %w", err)
	}
	if env.getenv("GOGC") == "" {
		// Go's default target, set explicitly so the choice is visible:
		// 50 kept about 1 MiB less RSS with 1,000 names but ran the GC
		// twice as often, a fifth of the CPU per request at c=8 (issue
		// 10: 1,720 instead of 1,360 ms per 10,000 requests).
		debug.SetGCPercent(servingGCPercent)
	}
	log := server.NewLogger(env.stderr, cfg.LogLevel)
	srv, err := server.New(cfg, server.Options{Log: log, Stderr: env.stderr, Version: version})
	if err != nil {
		return err
	}
	// Once started and serving, not before: start-up is measured to the
	// socket, and the first requests fault in what they need anyway.
	trim := time.AfterFunc(trimAfter, trimExecutable)
	defer trim.Stop()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	serveErr := srv.Serve(ctx)
	if ctx.Err() != nil {
		log.Info("stopping on signal")
	}
	if err := srv.Close(); err != nil && serveErr == nil {
		log.Warnf("closing: %v", err)
	}
	return serveErr
}
