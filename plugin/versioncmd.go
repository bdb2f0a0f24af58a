package main

import (
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/swarmkeep/swarmkeep/driver/backend"
)

func init() {
	register("version", command{
		summary: "print the version, commit, Go version and the backends built in",
		usage: `Usage: swarmkeep version [--format F]
       swarmkeep --version

Prints what this binary is: its version, the commit it was built from (when
the build knew it), the Go version, the build tags and the backend types it
serves. swarmkeep --version prints the same on one line, as docker --version.
Compare it with the plugin's version in swarmkeep status.

` + formatUsage("{{.Version}} {{.Commit}}", ".Version .Commit .Modified .GoVersion .OS .Arch\n"+
			"                 .BuildTags .Backends (JSON: the same in snake_case)"),
		run: runVersion,
	})
}

// versionInfo is what version prints; its JSON is --format json.
type versionInfo struct {
	Version   string   `json:"version"`
	Commit    string   `json:"commit,omitempty"`
	Modified  bool     `json:"modified,omitempty"` // built from a tree with uncommitted changes
	GoVersion string   `json:"go_version"`
	OS        string   `json:"os"`
	Arch      string   `json:"arch"`
	BuildTags []string `json:"build_tags"`
	Backends  []string `json:"backends"`
}

// buildVersion reads the build information Go stamps into the binary: the
// commit when built from a git checkout (go build stamps vcs.revision),
// and the -tags the build used (make build-small leaves backends out).
func buildVersion() versionInfo {
	v := versionInfo{Version: version, Commit: commit, GoVersion: runtime.Version(),
		OS: runtime.GOOS, Arch: runtime.GOARCH, BuildTags: []string{}, Backends: backend.Types()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if v.Commit == "" {
					v.Commit = s.Value
				}
			case "vcs.modified":
				v.Modified = s.Value == "true"
			case "-tags":
				for _, t := range strings.Split(s.Value, ",") {
					if t = strings.TrimSpace(t); t != "" {
						v.BuildTags = append(v.BuildTags, t)
					}
				}
			}
		}
	}
	return v
}

func runVersion(env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	format, _ := formatFlag(fs, false)
	short := fs.Bool("short", false, "one line")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := exactArgs(pos, 0, "no arguments"); err != nil {
		return err
	}
	f, err := parseFormat(*format)
	if err != nil {
		return err
	}
	v := buildVersion()
	if *short && f.table() {
		fmt.Fprintln(env.stdout, v.line())
		return nil
	}
	return f.print(env.stdout, v, func(w io.Writer) error {
		commit := orDash(v.Commit)
		if v.Modified {
			commit += " (modified)"
		}
		tags := "none"
		if len(v.BuildTags) > 0 {
			tags = strings.Join(v.BuildTags, ",")
		}
		_, err := fmt.Fprintf(w, "Version:     %s\nCommit:      %s\nGo version:  %s\nOS/Arch:     %s/%s\nBuild tags:  %s\nBackends:    %s\n",
			v.Version, commit, v.GoVersion, v.OS, v.Arch, tags, strings.Join(v.Backends, ", "))
		return err
	})
}

// line is the --version line: docker's "Docker version X, build C".
func (v versionInfo) line() string {
	s := "swarmkeep version " + v.Version
	if v.Commit != "" {
		s += ", build " + cut(v.Commit, 12)
		if v.Modified {
			s += "-modified"
		}
	}
	return s + " (" + v.GoVersion + " " + v.OS + "/" + v.Arch + "; backends " + strings.Join(v.Backends, ",") + ")"
}
