"""riskgate's Kubernetes operator: WebhookSubscription resources synced into the service."""
