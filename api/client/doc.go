// Package client reaches kprobe's data through the API: Client implements
// investigate.Service over kprobe.v1, so the CLI, the workstation and replay work the same
// against a remote API, a local recorder's unix socket, or the stores opened directly.
package client
