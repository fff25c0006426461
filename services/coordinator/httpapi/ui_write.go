package httpapi

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/paper"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/services/coordinator/api"
	"github.com/upshift/upshift/services/coordinator/sagastore"
)

// uiOp is a decision the page's buttons take, with the role it needs: the
// JSON API's.
type uiOp struct {
	op   events.ControlOp
	role Role
}

var (
	opApprove = uiOp{events.OpApprove, RoleApprove}
	opReject  = uiOp{events.OpReject, RoleApprove}
	opCancel  = uiOp{events.OpCancel, RoleOperate}
	opConfirm = uiOp{events.OpConfirm, RoleConfirm}
)

// uiForm reads a decision's form within the size limit.
func (s *server) uiForm(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBody)
	if err := r.ParseForm(); err != nil {
		return badRequest("form: %v", err)
	}
	return nil
}

// uiDecide takes a decision from the saga's page as POST
// /v1/sagas/{id}/{op} takes it: the same rights, the same actor rule (a
// named token decides as itself), the same backend call and the same log
// line; then it goes back to the page. A confirmation's form names its
// role and calls the actor "by".
func (s *server) uiDecide(o uiOp) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var (
			who   caller
			actor string
			code  int
			cause error
		)
		defer func() { s.logWrite(r, who, actor, code, cause) }()
		if len(s.known.hashes) == 0 {
			code = http.StatusForbidden
			s.message(w, r, code, "Forbidden", errNoToken)
			return
		}
		if who, code = s.uiAuthorize(w, r, o.role); code != 0 {
			return
		}
		id, err := sagaID(r)
		if err == nil {
			err = s.uiForm(w, r)
		}
		field, role := "actor", ""
		if o.op == events.OpConfirm {
			field, role = "by", strings.TrimSpace(r.PostForm.Get("role"))
		}
		body := DecisionBody{Actor: strings.TrimSpace(r.PostForm.Get(field)), Comment: strings.TrimSpace(r.PostForm.Get("comment"))}
		switch {
		case err != nil:
		case o.op == events.OpConfirm && (role == "" || who.name == "" && body.Actor == ""):
			err = badRequest("role and by are required: which role confirms, and who")
		case who.name == "" && body.Actor == "":
			err = badRequest("actor is required: say who decides")
		}
		if err != nil {
			code, cause = s.uiFail(w, r, err), err
			return
		}
		if actor, err = who.actor(body); err != nil {
			code, cause = http.StatusForbidden, err
			s.message(w, r, code, "Forbidden", err.Error())
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
		defer cancel()
		if _, err := s.b.Decide(ctx, api.ControlRequest{ID: id, Op: o.op, Actor: actor, Comment: body.Comment, Role: role}); err != nil {
			code, cause = s.uiFail(w, r, err), err
			return
		}
		code = http.StatusAccepted // for the log: the page itself is a redirect
		http.Redirect(w, r, "/ui/sagas/"+id+"?done="+string(o.op), http.StatusSeeOther)
	}
}

// paperCSP lets a plan or report use the inline style pkg/paper writes,
// and nothing else.
const paperCSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// planDoc is a saga's plan from its request. The coordinator's targets
// file and policy are not the page's to read: their sections say so.
func planDoc(s saga.Saga, _ []sagastore.Entry, lang paper.Lang) paper.Doc {
	return paper.Plan(paper.PlanInput{Request: s.Request, Date: s.CreatedAt}, lang)
}

func reportDoc(s saga.Saga, h []sagastore.Entry, lang paper.Lang) paper.Doc {
	return paper.Report(s, h, lang)
}

// uiPaper serves a saga's plan or report as HTML, in ?lang=en (default)
// or zh, as `upshift plan` and `upshift report` write them.
func (s *server) uiPaper(doc func(saga.Saga, []sagastore.Entry, paper.Lang) paper.Doc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		lang := paper.English
		if l := r.URL.Query().Get("lang"); l != "" {
			var err error
			if lang, err = paper.ParseLang(l); err != nil {
				s.uiFail(w, r, badRequest("lang: %v", err))
				return
			}
		}
		id, err := sagaID(r)
		if err != nil {
			s.uiFail(w, r, err)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
		defer cancel()
		v, err := s.b.Get(ctx, id)
		if err != nil {
			s.uiFail(w, r, err)
			return
		}
		h, err := s.b.History(ctx, id)
		if err != nil {
			s.uiFail(w, r, err)
			return
		}
		var b bytes.Buffer
		if err := doc(v.Saga, h, lang).Render(&b, paper.HTML); err != nil {
			s.uiFail(w, r, fmt.Errorf("render %s: %w", r.URL.Path, err))
			return
		}
		htmlHeaders(w, paperCSP)
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(b.Bytes())
	}
}
