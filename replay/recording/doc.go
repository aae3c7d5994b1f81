// Package recording turns the flight recorder's events of one process into what replay
// serves from: the calls in order, each tied to the file or socket its fd named when it
// ran (fd identity, rebuilt by replaying the recorded fd table: opens, connects,
// accepts, dups and closes), with per-resource input and output streams and the opens,
// connects, accepts, polls and random reads in the order the program made them.
package recording
