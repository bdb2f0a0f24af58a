// Command nullplugin is the bench's reference: the smallest secrets plugin
// one can write with github.com/docker/go-plugins-helpers, answering one
// fixed value to every GetSecret at once. Whatever swarmkeep serve costs
// beyond it is what swarmkeep adds to the plugin protocol itself (socket,
// HTTP, JSON both ways), so `make bench` compares the shipped binary with
// it, each in its own process.
//
// Usage: nullplugin SOCKET (an absolute path; the socket is created there).
// It stops on SIGTERM or SIGINT.
package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/docker/go-plugins-helpers/secrets"
)

// value is what every answer carries: as long as a stored bench value (32
// bytes); the load generator checks it (test/bench load.go nullValue).
const value = "bench-null-value-xxxxxxxxxxxxxxx"

type driver struct{}

func (driver) Get(secrets.Request) secrets.Response {
	return secrets.Response{Value: []byte(value)}
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: nullplugin SOCKET")
		os.Exit(2)
	}
	sock := os.Args[1]
	_ = os.Remove(sock)
	// A plain listener rather than ServeUnix, which would also create
	// /run/docker/plugins: the bench runs outside any engine.
	l, err := net.Listen("unix", sock)
	if err != nil {
		fmt.Fprintf(os.Stderr, "nullplugin: %v\n", err)
		os.Exit(1)
	}
	go func() {
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
		<-c
		l.Close()
	}()
	h := secrets.NewHandler(driver{})
	if err := h.Serve(l); err != nil && !errors.Is(err, net.ErrClosed) {
		fmt.Fprintf(os.Stderr, "nullplugin: %v\n", err)
		os.Exit(1)
	}
	_ = os.Remove(sock)
}
