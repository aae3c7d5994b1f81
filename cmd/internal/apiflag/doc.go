// Package apiflag holds the --api* flags of the commands: the client side (kprobe-tui and
// 'kprobe-agent ssh' reading through an API) and the server side ('kprobe-agent api',
// 'standalone' and 'engine' serving one), with their KPROBE_* environment fallbacks. Secrets
// come from files or the environment, never from argv.
package apiflag
