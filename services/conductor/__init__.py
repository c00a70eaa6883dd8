"""The conductor: the background roles, headless (jobline.conductor).

Three durable consumers, each shared by every conductor replica (one message to one of them):
the flow runner (`flows.>`: releases, resumes and fails the jobs of flows), the schedule runner
(`schedules.*.due`: recurring schedules' ticks become jobs) and the webhook dispatcher
(`webhooks.*.due`: job ends that asked for a webhook). No HTTP besides its ops port; it writes jobs
through the same `JobWriter` as the gateway.
"""
