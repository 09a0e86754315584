"""playbook: an incident-response playbook runner for the terminal."""
