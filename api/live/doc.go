// Package live fans out what the engine writes to the event log (kernel events and spans)
// to any number of live subscribers, the API's StreamLive. A Tap wraps the engine's store;
// publishing never blocks the writer: a subscriber that falls behind misses batches, and
// is told how many.
package live
