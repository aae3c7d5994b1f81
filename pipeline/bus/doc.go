// Package bus is the message transport seen by the recorder and the engine: a Message,
// the Publisher and Source interfaces they use, and Memory, the in-process bus of the
// embedded default. Kafka implements the same interfaces (package transport/kafka).
package bus
