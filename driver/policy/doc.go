// Package policy decides which requesters may read which stored names.
//
// Swarm lets anyone who can create a service attach any driver secret to
// it. Without a policy, swarmkeep would serve every stored name to every
// service. This package answers one question for the driver, before any
// backend is asked: may this service's task read this stored name?
//
// # Who asks
//
// The requester is the service the leader is assigning a task for: its
// stack (its com.docker.stack.namespace label), name, labels, the task's
// image and the node ID; see [Identity] and [IdentityOf]. The secret's own
// labels are never part of it. Whoever creates a secret sets its labels,
// so they could name any stack; the only secret label the driver honours,
// [ServicesLabel], can narrow access ([NarrowedByServices]) and never widen
// it.
//
// What this protects against: one team's stack reading another team's
// names by mistake or by a copied compose file. What it cannot protect
// against: a user of the Swarm API who sets another stack's labels, name
// or image on their own service. Every identity field comes from the
// service spec, and Swarm API access is root on the nodes anyway. An image
// pinned by digest narrows what code runs, not who deployed it.
//
// # Decisions
//
// [Policy.Decide] goes in this order:
//
//  1. a stored name with an empty, "." or ".." segment is denied, so that
//     "payments/../admin" cannot pass as payments/**;
//  2. a deny pattern of any rule whose match holds denies;
//  3. an allow pattern of a matching rule allows (the first such rule is
//     named);
//  4. a shared pattern allows (rule "shared"): shared/** unless the file
//     gives its own shared list; with "default: deny" only the file's list;
//  5. unless the file says "default: deny", the built-in rules allow: a
//     service in stack S reads S/** (rule "default:stack-namespace"), and a
//     service in no stack reads names without '/' (rule
//     "default:top-level");
//  6. anything else is denied, with reason "no rule grants it".
//
// Decide never looks at the store, so a denial says nothing about whether
// a name exists. Its Reason strings are built at load: Decide takes no
// lock and allocates nothing.
//
// # Patterns
//
// One glob syntax everywhere ([CompileGlob]): "*" matches any run of
// characters within one '/'-separated segment (also an empty one), "?" one
// character other than '/', "**" any run including '/', and "a/**/b" also
// matches "a/b". The same holds for images: write
// "registry.example.com/payments/*@sha256:*", or "**" to cross '/'. The
// characters []{}\ are reserved and refused.
//
// # Files
//
// [Parse] reads the versioned YAML (or JSON) format documented in
// README.md next to this file. [Watcher] keeps a file's policy current:
// it polls every [PollInterval], swaps a new policy in atomically, keeps
// the previous one when a change does not load, and reverts to [Default]
// when the file is removed.
package policy
