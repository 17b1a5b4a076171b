package http

import (
	"context"
	"net/http"

	"github.com/imaged/imaged"
)

// deliveryView is a webhook delivery as the API shows it: where it goes, how its tries went.
type deliveryView struct {
	*imaged.OutboxItem
	DeliveryID string `json:"delivery_id"`
}

func viewDelivery(d *imaged.OutboxItem) deliveryView {
	return deliveryView{OutboxItem: d, DeliveryID: d.ID}
}

// outbox is the store's outbox; a store without one keeps no deliveries to show.
func (s *Server) outbox() (imaged.Outbox, error) {
	if s.deps.Outbox == nil {
		return nil, imaged.Errorf(imaged.ENotFound, "this service keeps no webhook deliveries")
	}
	return s.deps.Outbox, nil
}

// findDelivery is the tenant's webhook delivery id, for owned.
func (s *Server) findDelivery(ctx context.Context, tenant, id string) (*imaged.OutboxItem, error) {
	o, err := s.outbox()
	if err != nil {
		return nil, err
	}
	return o.Delivery(ctx, tenant, id)
}

// handleTaskDeliveries lists the webhook deliveries of a task, oldest first, with their tries.
func (s *Server) handleTaskDeliveries() http.Handler {
	return owned(s, s.deps.Store.Task, func(w http.ResponseWriter, r *http.Request, t *imaged.Task) error {
		o, err := s.outbox()
		if err != nil {
			return err
		}
		ds, err := o.Deliveries(r.Context(), t.Tenant, t.ID)
		if err != nil {
			return err
		}
		out := list[deliveryView]{Items: make([]deliveryView, 0, len(ds))}
		for _, d := range ds {
			out.Items = append(out.Items, viewDelivery(d))
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	})
}

// handleRedeliver sends a webhook delivery again (delivered, given up or still trying): it
// becomes pending and due now, with the same webhook id.
func (s *Server) handleRedeliver() http.Handler {
	return owned(s, s.findDelivery, func(w http.ResponseWriter, r *http.Request, d *imaged.OutboxItem) error {
		again, err := s.deps.Outbox.Redeliver(r.Context(), d.Tenant, d.ID)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusAccepted, viewDelivery(again))
		return nil
	})
}
