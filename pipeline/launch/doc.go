// Package launch starts a program held before its first instruction: the calling binary
// re-executes itself as a small launcher that waits for a release, then execs the program
// under the same pid. A recorder adds that pid to its filter first, so nothing the program
// does is missed; a replay can start programs the same way.
package launch
