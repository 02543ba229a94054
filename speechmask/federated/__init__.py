"""Federated adaptation on masked features with Flower (`speechmask federate`): devices hold only
what their mask sends, and adapt the cloud model without raw speech leaving them. A plugin of the
core: it imports `speechmask`, the core never imports it."""
