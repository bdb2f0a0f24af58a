// Package vaulttest is an in-process fake of the Vault / OpenBao HTTP API,
// for tests of code that reads KV secrets through the official api client.
//
// It serves, on 127.0.0.1 with optional TLS and client certificates:
//
//   - KV v2: GET/POST/PUT/DELETE /v1/{mount}/data/{path} (with ?version=N),
//     POST /v1/{mount}/delete/{path}, POST /v1/{mount}/destroy/{path},
//     GET /v1/{mount}/metadata/{path} (current_version and version times)
//   - KV v1: GET/POST/PUT/DELETE /v1/{mount}/{path}
//   - POST /v1/auth/{approle mount}/login and /v1/auth/{jwt mount}/login
//   - GET /v1/auth/token/lookup-self, POST /v1/auth/token/renew-self
//   - POST/DELETE /v1/sys/mounts/{path}, POST /v1/sys/namespaces/{path},
//     PUT/DELETE /v1/sys/policies/acl/{name}, DELETE /v1/{mount}/metadata/{path}
//   - POST /v1/auth/token/create, PUT /v1/auth/token/revoke
//   - GET /v1/sys/internal/ui/mounts/{path} (a mount's type and KV version)
//
// Response bodies and status codes follow the real servers (see README.md
// in the parent directory for what was checked and where): a missing secret
// or version is a 404 with {"errors":[]}; a deleted or destroyed KV v2
// version is a 404 that still carries {"data":{"data":null,"metadata":...}};
// a bad token is a 403 worded as a policy refusal; a failed login is a 400;
// plain HTTP to the TLS listener is Go's bare 400 "Client sent an HTTP
// request to an HTTPS server".
//
// Tokens carry a TTL the server enforces, and a list of ACL path patterns
// (a trailing '*' is a prefix glob, as in Vault policies) that grant every
// capability. Tests can count requests, add latency, seal the server (503)
// or stop and restart its listener.
//
// # Fidelity limits
//
// Policies are path lists with no per-capability control: an HCL policy is
// read for its path stanzas only.
// Namespaces come only from the X-Vault-Namespace header, never from a path
// prefix. LIST, undelete, CAS on delete, response
// wrapping, entities, batch tokens, token num_uses and the rest of the API
// are not served: they answer 405 with an error naming the fake.
package vaulttest
