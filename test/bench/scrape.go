package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// samples are one scrape of a plugin's /metrics: value by series, the
// series written as in the exposition format, name{labels}.
type samples map[string]float64

// scrape reads the shipped plugin's /metrics over its METRICS_SOCKET, as
// an operator's Prometheus does on a manager.
func (p *proc) scrape() (samples, error) {
	if p.metrics == "" {
		return nil, fmt.Errorf("%s has no metrics socket", p.name)
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", p.metrics)
		},
	}}
	resp, err := c.Get("http://metrics/metrics")
	if err != nil {
		return nil, fmt.Errorf("%s metrics: %w", p.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s metrics: status %d", p.name, resp.StatusCode)
	}
	out := samples{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		k := strings.LastIndexByte(line, ' ')
		if k < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[k+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("%s metrics: %q", p.name, line)
		}
		out[line[:k]] = v
	}
	return out, sc.Err()
}

// sum adds the series of metric name whose labels contain every one of
// labels (each written `key="value"`).
func (s samples) sum(name string, labels ...string) float64 {
	var t float64
	for series, v := range s {
		n, rest, _ := strings.Cut(series, "{")
		if n != name {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(rest, l)
		}
		if ok {
			t += v
		}
	}
	return t
}

// cacheStat is one cache counter of backend instance b
// (swarmkeep_cache_<what>, or another metric when what starts with
// "swarmkeep_").
func (s samples) cacheStat(b, what string) uint64 {
	name := what
	if !strings.HasPrefix(what, "swarmkeep_") {
		name = "swarmkeep_cache_" + what
	}
	return uint64(s.sum(name, `backend="`+b+`"`))
}

// waitMetric polls the plugin's metrics until ok says yes, for up to 30 s.
func (p *proc) waitMetric(ctx context.Context, what string, ok func(samples) (bool, error)) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		s, err := p.scrape()
		if err == nil {
			var done bool
			if done, err = ok(s); done || err != nil {
				return err
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return errors.Join(fmt.Errorf("%s: %s: not within 30 s", p.name, what), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
