package otlp

import (
	"compress/gzip"
	"errors"
	"io"
	"mime"
	"net/http"
	"os"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

func (r *Receiver) serveHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	s := senderFromContext(req.Context())
	if err := r.admitPeer(s); err != nil {
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	mt, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type"))
	isJSON := false
	switch mt {
	case "application/x-protobuf", "application/protobuf":
	case "application/json":
		isJSON = true
	default:
		r.cnt.bad.Add(1)
		http.Error(w, "unsupported content type "+mt, http.StatusUnsupportedMediaType)
		return
	}
	gzipped := false
	switch req.Header.Get("Content-Encoding") {
	case "", "identity":
	case "gzip":
		gzipped = true
	default:
		r.cnt.bad.Add(1)
		http.Error(w, "unsupported content encoding", http.StatusUnsupportedMediaType)
		return
	}
	maxBytes := int64(r.opts.MaxRequestBytes)
	if req.ContentLength > maxBytes {
		http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
		return
	}
	// Room for the body before reading it: its declared length, or the most allowed when
	// it is unknown (chunked) or inflates (gzip).
	held := maxBytes
	if req.ContentLength >= 0 && !gzipped {
		held = req.ContentLength
	}
	if !r.admit.acquire(req.Context(), held) {
		r.cnt.refusedBusy.Add(1)
		w.Header().Set("Retry-After", "1")
		http.Error(w, "receiver busy: too many request bytes in flight; retry later", http.StatusServiceUnavailable)
		return
	}
	defer func() { r.admit.release(held) }()
	// A body that trickles in would hold its connection and its reservation.
	if err := http.NewResponseController(w).SetReadDeadline(time.Now().Add(r.opts.BodyTimeout)); err != nil {
		r.log.Debug("cannot set a body deadline", "err", err)
	}

	var body io.Reader = http.MaxBytesReader(w, req.Body, maxBytes)
	if gzipped {
		zr, err := gzip.NewReader(body)
		if err != nil {
			r.readFailed(w, err, "bad gzip body")
			return
		}
		defer zr.Close()
		// Cap the inflated size too: a small gzip body can expand without bound.
		body = io.LimitReader(zr, maxBytes+1)
	}
	data, err := io.ReadAll(body)
	if err != nil {
		r.readFailed(w, err, "reading body failed")
		return
	}
	if int64(len(data)) > maxBytes {
		http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
		return
	}
	held = r.admit.shrink(held, int64(len(data)))

	exportReq := ptraceotlp.NewExportRequest()
	if isJSON {
		err = exportReq.UnmarshalJSON(data)
	} else {
		err = exportReq.UnmarshalProto(data)
	}
	if err != nil {
		r.cnt.bad.Add(1)
		http.Error(w, "bad otlp request: "+err.Error(), http.StatusBadRequest)
		return
	}
	resp, err := r.export(req.Context(), exportReq.Traces(), s)
	if err != nil {
		r.log.Warn("otlp http export refused", "err", err)
		w.Header().Set("Retry-After", "1")
		http.Error(w, "sink unavailable", http.StatusServiceUnavailable)
		return
	}
	var out []byte
	if isJSON {
		out, err = resp.MarshalJSON()
		w.Header().Set("Content-Type", "application/json")
	} else {
		out, err = resp.MarshalProto()
		w.Header().Set("Content-Type", "application/x-protobuf")
	}
	if err != nil {
		http.Error(w, "encoding response failed", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusOK)
	w.Write(out)
}

// readFailed answers a body that could not be read: too large, too slow, or malformed.
func (r *Receiver) readFailed(w http.ResponseWriter, err error, what string) {
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
	case errors.Is(err, os.ErrDeadlineExceeded):
		r.cnt.bodyTimeouts.Add(1)
		http.Error(w, "request body not received within "+r.opts.BodyTimeout.String(), http.StatusRequestTimeout)
	default:
		r.cnt.bad.Add(1)
		http.Error(w, what, http.StatusBadRequest)
	}
}
