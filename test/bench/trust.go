package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	srvpkg "github.com/swarmkeep/swarmkeep/driver/server"
)

// benchPolicy is a policy of the size an operator writes: several rules
// that do not match the bench's service, so every request walks them before
// the default rule grants its top-level name, which is the costly path.
const benchPolicy = `version: 1
shared: ["shared/**", "tls/ca"]
rules:
  - name: payments
    match: {stack: payments, service: "payments_*"}
    allow: ["payments/**"]
    deny: ["payments/admin/**"]
  - name: billing
    match: {service: "billing_*", image: "registry.example.com/billing/*@sha256:*"}
    allow: ["billing/**"]
  - name: ops
    match: {service_labels: {team: ops}}
    allow: ["ops/**", "db/ops/*"]
  - name: pinned-node
    match: {node: "node-ops-*"}
    allow: ["node/**"]
  - name: no-admin
    match: {service: "*"}
    deny: ["admin/**"]
`

// measureTrust compares the store with the access policy and the audit
// trail on against the same store with both off, in one run (issue target:
// at least 0.85x the throughput).
func measureTrust(ctx context.Context, cfg config, st *stores, sockDir string, rep *report) error {
	in, err := st.env(ctx, cfg.tputN)
	if err != nil {
		return err
	}
	pfile := filepath.Join(sockDir, "policy.yaml")
	if err := os.WriteFile(pfile, []byte(benchPolicy), 0o600); err != nil {
		return err
	}
	trailFile := filepath.Join(sockDir, "audit", "audit.log")
	off, err := startServer(sockDir, "trust-off", in, cfg.conc)
	if err != nil {
		return err
	}
	defer off.Close()
	onEnv := map[string]string{srvpkg.EnvPolicyFile: pfile, srvpkg.EnvAudit: "on", srvpkg.EnvAuditFile: trailFile}
	for k, v := range in {
		onEnv[k] = v
	}
	on, err := startServer(sockDir, "trust-on", onEnv, cfg.conc)
	if err != nil {
		return err
	}
	defer on.Close()
	res, err := comparePair(ctx, cfg, [2]string{"off", "on"}, [2]*server{off, on}, [2]bool{false, false})
	if err != nil {
		return err
	}
	if fi, err := os.Stat(trailFile); err != nil || fi.Size() == 0 {
		return fmt.Errorf("audit trail not written: %v", err)
	}
	bo, bn := res.pooled[0], res.pooled[1]
	c := fmt.Sprintf("c%d", cfg.conc)
	rep.info("policy+audit off "+c+" req/s", bo.RPS, "req/s", fmt.Sprintf("%.0f", bo.RPS))
	rep.info("policy+audit on "+c+" req/s", bn.RPS, "req/s", fmt.Sprintf("%.0f", bn.RPS))
	rep.info("policy+audit on "+c+" p99", us(bn.P99), "µs", fmtDur(bn.P99))
	tr, shown := medianRatio(res.ratios[1], "pairs")
	rep.atLeast("throughput policy+audit on/off", tr, 0.85, "ratio", shown+res.stalls(), ">= 0.85x")
	return nil
}
