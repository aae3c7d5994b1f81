// Package frontdoor serves the workstation over SSH, so an on-call SRE needs nothing
// installed: `ssh -p 2222 kprobe.internal`. Public keys from an authorized_keys file are
// the only way in; every session runs its own program.
package frontdoor
