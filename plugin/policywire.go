package main

// EnvPolicyFile names the access policy file serve reads (and reloads when
// it changes); a missing file means the built-in default policy.
const EnvPolicyFile = "POLICY_FILE"
