"""The opsflow domain: BPMN processes, their instances, human tasks, timers and the audit trail."""
