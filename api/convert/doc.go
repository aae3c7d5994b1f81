// Package convert translates between the use-case model (pipeline/investigate, the event
// model) and the kprobe.v1 API messages, both ways: the server answers with it and the
// client reads answers back into the model, so the two stay exact inverses.
package convert
