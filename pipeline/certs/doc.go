// Package certs loads the PEM files of TLS settings (CA bundles, key pairs) with errors
// that name the flag they came from, for every connection kprobe makes or serves: the API,
// the Kafka client, the ClickHouse client.
package certs
