// Package correlate joins kernel events to trace spans: each event gets the innermost
// span of its host and pid (a span on its own thread first) whose time range holds it,
// with the span's trace, service and business attributes, including those inherited from
// its ancestors. Events and spans arrive on separate streams with skew, so events wait
// behind a watermark until the spans that could hold them have had time to arrive.
package correlate
