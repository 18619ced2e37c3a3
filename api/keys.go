package api

import (
	"net/http"

	"github.com/checkd/checkd/store"
)

// RekeyResponse answers POST /v1/store/rekey: whether a run started (false:
// one toward the same key was under way already) and where things stand.
type RekeyResponse struct {
	Started bool `json:"started"`
	store.KeyStatus
}

// keyStatus answers GET /v1/store/keys: the encryption keys in use and the
// re-encryption's progress.
func (s *Server) keyStatus(w http.ResponseWriter, r *http.Request) {
	st, err := s.st.KeyStatus(r.Context())
	if err != nil {
		s.serverError(w, r, err, "api: read key status")
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// startRekey answers POST /v1/store/rekey: it starts re-encrypting every
// credential under this process's primary key; the processes holding the
// same keys and the old ones (CHECKD_ENCRYPTION_OLD_KEYS) do it.
func (s *Server) startRekey(w http.ResponseWriter, r *http.Request) {
	started, err := s.st.StartRekey(r.Context())
	if err != nil {
		s.serverError(w, r, err, "api: start re-encryption")
		return
	}
	if s.cfg.OnRekeyStart != nil {
		s.cfg.OnRekeyStart()
	}
	st, err := s.st.KeyStatus(r.Context())
	if err != nil {
		s.serverError(w, r, err, "api: read key status")
		return
	}
	writeJSON(w, http.StatusAccepted, RekeyResponse{Started: started, KeyStatus: st})
}
