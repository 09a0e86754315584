"""Seed 003, the Data Integrity Playbook, is encoded whole in ``runbooks/data-integrity.yaml``.

The source document's text is typed here as literals (its headings, numbered step titles,
bullets, table rows, status messages, commands and queries), so this test never reads the
source document itself. Each piece is checked where it belongs in the loaded model, so a
bullet that moves to the wrong step fails as surely as one that goes missing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from textwrap import dedent
from typing import Any

import pytest

from playbook.adapters.mongo.models import MongoDiagnostic
from playbook.adapters.plugins import load_playbook as load
from playbook.core.model import Playbook

ROOT = Path(__file__).parents[2]
PLAYBOOK_FILE = ROOT / "runbooks" / "data-integrity.yaml"

# --------------------------------------------------------------------------- the seed, as typed

SUMMARY = (
    "This playbook provides a structured approach for responding to data integrity incidents "
    "in the Chatbot Fluxa application. Data integrity incidents include data corruption, "
    "inconsistency, loss, or unauthorized modification that affects the accuracy, "
    "completeness, or reliability of the application's data."
)

# Each heading of the seed (#, ##) and whether the model carries what it heads. The ###
# headings are checked with what they head: sections, templates, procedures, tables.
TESTING_SCRIPT_DIAGNOSTICS = ("orphaned-references", "invalid-user-types", "duplicate-keys")
HEADINGS: dict[str, Callable[[Playbook], bool]] = {
    "Data Integrity Playbook": lambda pb: pb.title == "Data Integrity Playbook",
    "Severity Classification": lambda pb: bool(pb.severity.levels),
    "Triggers": lambda pb: bool(pb.triggers),
    "Initial Assessment": lambda pb: pb.assessment.title == "Initial Assessment",
    "Response Procedure": lambda pb: bool(pb.phases),
    "Specific Data Integrity Scenarios": lambda pb: bool(pb.scenarios),
    "Post-Incident Activities": lambda pb: bool(pb.post_incident),
    "Communication Templates": lambda pb: bool(pb.communications.templates),
    "Data Recovery Procedures": lambda pb: bool(pb.recovery_procedures),
    "Appendix": lambda pb: bool(pb.appendix),
    "Data Integrity Testing Scripts": lambda pb: all(
        d in pb.diagnostics and "Data Integrity Testing Scripts" in pb.diagnostics[d].description
        for d in TESTING_SCRIPT_DIAGNOSTICS
    ),
}

# Severity Classification: (aspect, classification, notes), bold markers dropped.
SEVERITY_TABLE = [
    ("Default Severity", "P2 - High", "May be escalated to P1 if critical data is affected"),
    ("Response Time", "1 hour", "Team must acknowledge and begin response"),
    ("Resolution Time Target", "8 hours", "Maximum time to restore data integrity"),
    (
        "Escalation Path",
        "Technical Lead \u2192 Engineering Manager \u2192 CTO",
        "Escalate based on data criticality",
    ),
]

# Triggers: (group id in the model, the seed's bold label, its bullets).
TRIGGERS: list[tuple[str, str, list[str]]] = [
    (
        "automated-alerts",
        "Automated Alerts",
        [
            "Database consistency check failures",
            "Data validation errors in application logs",
            "Unexpected data patterns detected by monitoring",
            "Backup verification failures",
            "Schema validation errors",
        ],
    ),
    (
        "user-reports",
        "User Reports",
        [
            "Users reporting missing or incorrect data",
            "Users reporting unexpected behavior related to their data",
            "Customer support reporting patterns of data-related issues",
        ],
    ),
    (
        "internal-detection",
        "Internal Detection",
        [
            "Team member discovers data inconsistencies",
            "Anomalies found during data analysis",
            "Issues discovered during development or testing",
            "Post-deployment verification failures",
        ],
    ),
    (
        "system-events",
        "System Events",
        [
            "Failed database migration",
            "Incomplete data import/export",
            "Storage system failures",
            "Replication or synchronization failures",
        ],
    ),
]

# Every checklist of the seed: (section id in the model, the seed's heading, its numbered
# steps as (step id in the model, title, bullets)). Sub-bullets follow their bullet; a
# scenario's "Investigation Steps" bullets are the comments of its code block.
CHECKLISTS: list[tuple[str, str, list[tuple[str, str, list[str]]]]] = [
    (
        "assessment",
        "Initial Assessment",
        [
            (
                "verify",
                "Verify the Data Integrity Issue",
                [
                    "Confirm that a data integrity issue exists",
                    "Identify the affected data and systems",
                    "Determine the scope of the problem (isolated vs. widespread)",
                    "Assess if the issue is ongoing or a one-time occurrence",
                ],
            ),
            (
                "assess-impact",
                "Assess Impact",
                [
                    "Identify affected functionality",
                    "Estimate the number of affected users",
                    "Determine if sensitive or critical data is involved",
                    "Assess business impact (financial, operational, reputational)",
                    "Check for regulatory implications",
                ],
            ),
            (
                "identify-causes",
                "Identify Potential Causes",
                [
                    "Recent code or schema changes",
                    "Database operations or migrations",
                    "System failures or crashes",
                    "External integrations or data imports",
                    "Potential security incidents",
                    "User actions or errors",
                ],
            ),
        ],
    ),
    (
        "immediate-response",
        "Phase 1: Immediate Response (0-60 minutes)",
        [
            (
                "assemble-response-team",
                "Assemble Response Team",
                [
                    "Notify on-call engineer",
                    "Assign Incident Commander",
                    "Notify Technical Lead and Database Administrator",
                    "Create incident channel in Slack",
                ],
            ),
            (
                "containment",
                "Containment",
                [
                    "Prevent further data corruption if ongoing",
                    "Consider pausing affected systems or features",
                    "Implement read-only mode if necessary",
                    "Preserve evidence of the issue",
                ],
            ),
            (
                "initial-communication",
                "Initial Communication",
                [
                    "Notify internal stakeholders",
                    "Update status page if user impact is significant",
                    "Prepare initial customer communication if needed",
                ],
            ),
        ],
    ),
    (
        "investigation",
        "Phase 2: Investigation (1-3 hours)",
        [
            (
                "detailed-data-analysis",
                "Detailed Data Analysis",
                [
                    "Examine database logs and audit trails",
                    "Review application logs for errors",
                    "Analyze data patterns and anomalies",
                    "Check recent changes to code or schema",
                    "Verify backup integrity",
                ],
            ),
            (
                "determine-scope-and-impact",
                "Determine Scope and Impact",
                [
                    "Identify all affected data records",
                    "Determine time range of the issue",
                    "Assess cascading effects on related data",
                    "Quantify impact on users and business functions",
                ],
            ),
            (
                "identify-root-cause",
                "Identify Root Cause",
                [
                    "Trace the origin of the corruption",
                    "Determine how the issue propagated",
                    "Identify contributing factors",
                    "Document the sequence of events",
                ],
            ),
        ],
    ),
    (
        "recovery-planning",
        "Phase 3: Recovery Planning (3-4 hours)",
        [
            (
                "develop-recovery-strategy",
                "Develop Recovery Strategy",
                [
                    "Evaluate recovery options:",
                    "Restore from backup",
                    "Data reconstruction",
                    "Manual correction",
                    "Hybrid approach",
                    "Assess risks of each recovery option",
                    "Determine verification methods",
                    "Create detailed recovery plan",
                ],
            ),
            (
                "prepare-recovery-resources",
                "Prepare Recovery Resources",
                [
                    "Identify required tools and scripts",
                    "Allocate necessary personnel",
                    "Prepare backup restoration if needed",
                    "Create test environment if possible",
                ],
            ),
            (
                "communication-planning",
                "Communication Planning",
                [
                    "Prepare user communications",
                    "Develop internal briefing",
                    "Create status update schedule",
                    "Identify stakeholders for approval",
                ],
            ),
        ],
    ),
    (
        "recovery-execution",
        "Phase 4: Recovery Execution (4-7 hours)",
        [
            (
                "implement-recovery-plan",
                "Implement Recovery Plan",
                [
                    "Execute data restoration or correction",
                    "Apply fixes in controlled manner",
                    "Document all changes made",
                    "Maintain detailed logs of recovery actions",
                ],
            ),
            (
                "verify-recovery",
                "Verify Recovery",
                [
                    "Run data validation checks",
                    "Verify application functionality",
                    "Perform sample testing",
                    "Validate data consistency across systems",
                ],
            ),
            (
                "update-communication",
                "Update Communication",
                [
                    "Provide progress updates to stakeholders",
                    "Update status page with recovery progress",
                    "Prepare for service restoration",
                ],
            ),
        ],
    ),
    (
        "service-restoration",
        "Phase 5: Service Restoration (7-8 hours)",
        [
            (
                "restore-normal-operation",
                "Restore Normal Operation",
                [
                    "Re-enable affected features",
                    "Remove any temporary restrictions",
                    "Monitor for any residual issues",
                    "Verify end-to-end functionality",
                ],
            ),
            (
                "user-communication",
                "User Communication",
                [
                    "Notify users of resolution",
                    "Provide transparency about the issue",
                    "Offer guidance for any user actions needed",
                    "Address any data loss concerns",
                ],
            ),
            (
                "final-verification",
                "Final Verification",
                [
                    "Conduct comprehensive data integrity checks",
                    "Verify all critical functionality",
                    "Ensure monitoring is in place",
                    "Document final state of the system",
                ],
            ),
        ],
    ),
    (
        "database-corruption",
        "Database Corruption",
        [
            (
                "detection",
                "Detection Signs",
                [
                    "Database consistency check failures",
                    "Unexpected query results",
                    "Index corruption warnings",
                    "Storage engine errors",
                ],
            ),
            (
                "investigation",
                "Investigation Steps",
                [
                    "Check MongoDB collection for corruption",
                    "Verify index integrity",
                    "Check for orphaned documents",
                ],
            ),
            (
                "recovery",
                "Recovery Procedures",
                [
                    "Restore from last known good backup",
                    "Repair database if corruption is limited",
                    "Rebuild indexes if index corruption",
                    "Reconcile data from secondary sources if available",
                ],
            ),
        ],
    ),
    (
        "data-synchronization",
        "Data Synchronization Issues",
        [
            (
                "detection",
                "Detection Signs",
                [
                    "Inconsistent data between systems",
                    "Failed synchronization jobs",
                    "Duplicate or missing records",
                    "Timestamp discrepancies",
                ],
            ),
            (
                "investigation",
                "Investigation Steps",
                [
                    "Find records that exist in one system but not another",
                    "Check for records with conflicting timestamps",
                ],
            ),
            (
                "recovery",
                "Recovery Procedures",
                [
                    "Identify and resolve conflicts",
                    "Re-run synchronization with corrected data",
                    "Implement reconciliation process",
                    "Update synchronization logic to prevent recurrence",
                ],
            ),
        ],
    ),
    (
        "schema-migration-failure",
        "Schema Migration Failures",
        [
            (
                "detection",
                "Detection Signs",
                [
                    "Failed migration scripts",
                    "Partial schema updates",
                    "Data type inconsistencies",
                    "Missing or extra fields",
                ],
            ),
            (
                "investigation",
                "Investigation Steps",
                [
                    "Find documents with inconsistent schema",
                    "Check for documents with incorrect data types",
                ],
            ),
            (
                "recovery",
                "Recovery Procedures",
                [
                    "Roll back migration if possible",
                    "Apply corrective migration",
                    "Transform data to match expected schema",
                    "Validate all affected records",
                ],
            ),
        ],
    ),
    (
        "data-loss",
        "Data Loss",
        [
            (
                "detection",
                "Detection Signs",
                [
                    "Missing records or fields",
                    "Truncated data",
                    "Unexpected null values",
                    "User reports of missing information",
                ],
            ),
            (
                "investigation",
                "Investigation Steps",
                [
                    "Check for recently deleted records",
                    "Look for audit logs of deletions",
                ],
            ),
            (
                "recovery",
                "Recovery Procedures",
                [
                    "Restore specific data from backups",
                    "Recover from soft-deleted records if available",
                    "Reconstruct data from logs or related records",
                    "Implement data recovery from client-side caches if possible",
                ],
            ),
        ],
    ),
    (
        "immediate-follow-up",
        "Immediate Follow-up",
        [
            (
                "monitoring",
                "Monitoring",
                [
                    "Implement enhanced monitoring for affected data",
                    "Set up alerts for similar patterns",
                    "Schedule regular integrity checks",
                    "Monitor user feedback for residual issues",
                ],
            ),
            (
                "documentation",
                "Documentation",
                [
                    "Document the incident timeline",
                    "Record all recovery actions taken",
                    "Update data models and schemas",
                    "Document new validation procedures",
                ],
            ),
        ],
    ),
    (
        "root-cause-analysis",
        "Root Cause Analysis",
        [
            (
                "conduct-data-integrity-review",
                "Conduct Data Integrity Review",
                [
                    "Analyze how the issue occurred",
                    "Identify contributing factors",
                    "Evaluate detection and response effectiveness",
                    "Document lessons learned",
                ],
            ),
            (
                "technical-review",
                "Technical Review",
                [
                    "Review data handling code",
                    "Evaluate database operations",
                    "Assess validation procedures",
                    "Review error handling",
                ],
            ),
            (
                "process-review",
                "Process Review",
                [
                    "Evaluate change management procedures",
                    "Review testing and validation processes",
                    "Assess backup and recovery procedures",
                    "Review monitoring and alerting effectiveness",
                ],
            ),
        ],
    ),
    (
        "preventive-measures",
        "Preventive Measures",
        [
            (
                "technical-improvements",
                "Technical Improvements",
                [
                    "Enhance data validation",
                    "Improve error handling",
                    "Implement additional integrity checks",
                    "Enhance backup procedures",
                ],
            ),
            (
                "process-improvements",
                "Process Improvements",
                [
                    "Update deployment procedures",
                    "Enhance testing requirements",
                    "Improve change management",
                    "Update documentation",
                ],
            ),
            (
                "monitoring-improvements",
                "Monitoring Improvements",
                [
                    "Implement additional integrity monitoring",
                    "Enhance alerting for data issues",
                    "Improve audit logging",
                    "Implement proactive data quality checks",
                ],
            ),
        ],
    ),
]

# Phases: id -> (stage, window start, window end in seconds), as the brief fixed them.
PHASES: dict[str, tuple[str, int, int]] = {
    "immediate-response": ("containment", 0, 3600),
    "investigation": ("investigation", 3600, 3 * 3600),
    "recovery-planning": ("recovery", 3 * 3600, 4 * 3600),
    "recovery-execution": ("recovery", 4 * 3600, 7 * 3600),
    "service-restoration": ("restoration", 7 * 3600, 8 * 3600),
}

SCENARIOS: dict[str, str] = {
    "database-corruption": "Database Corruption",
    "data-synchronization": "Data Synchronization Issues",
    "schema-migration-failure": "Schema Migration Failures",
    "data-loss": "Data Loss",
}

# Communication Templates: id -> (heading, status-page state, message lines as written).
SEED_MESSAGES: dict[str, tuple[str, str, list[str]]] = {
    "initial": (
        "Initial Status Page Update",
        "investigating",
        [
            "[SERVICE ISSUE] Chatbot Fluxa Data Consistency Issue",
            "",
            "We are currently investigating a data consistency issue affecting some features "
            "of the Chatbot Fluxa application. Some users may experience [SPECIFIC_ISSUES]. "
            "Our team is working to resolve this issue as quickly as possible.",
            "",
            "We will provide updates as more information becomes available.",
            "",
            "Time: [CURRENT_TIME]",
        ],
    ),
    "progress": (
        "Progress Update",
        "identified",
        [
            "[UPDATE] Chatbot Fluxa Data Consistency Issue",
            "",
            "We have identified the cause of the data consistency issue and are implementing "
            "a solution. Some features may remain temporarily unavailable while we restore "
            "data integrity.",
            "",
            "We expect to resolve this issue within [ESTIMATED_TIME]. We apologize for the "
            "inconvenience and appreciate your patience.",
            "",
            "Time: [CURRENT_TIME]",
        ],
    ),
    "resolution": (
        "Resolution Update",
        "resolved",
        [
            "[RESOLVED] Chatbot Fluxa Data Consistency Issue",
            "",
            "The data consistency issue affecting Chatbot Fluxa has been resolved. All "
            "features should now be functioning normally with correct data.",
            "",
            "The issue was caused by [BRIEF_CAUSE] and was resolved by [BRIEF_RESOLUTION]. "
            "We have implemented additional safeguards to prevent similar issues in the "
            "future.",
            "",
            # Not in the seed: PagerDuty's guidance (and the comms check before publishing)
            # wants every resolution to say whether data was lost.
            "Data loss: [DATA_LOSS]",
            "",
            "We apologize for any inconvenience this may have caused. If you notice any "
            "remaining data issues, please contact support.",
            "",
            "Time: [CURRENT_TIME]",
        ],
    ),
}

# Placeholder in the seed -> Jinja variable in the template file.
PLACEHOLDERS = {
    "[SPECIFIC_ISSUES]": "specific_issues",
    "[ESTIMATED_TIME]": "estimated_time",
    "[BRIEF_CAUSE]": "brief_cause",
    "[BRIEF_RESOLUTION]": "brief_resolution",
    "[DATA_LOSS]": "data_loss",
    "[CURRENT_TIME]": "current_time",
    "Chatbot Fluxa": "service",
}

_CONNECT = (
    "--host=<host> --username=<username> --password=<password> "
    "--authenticationDatabase=admin --db=<database>"
)
BACKUP_COMMANDS = [
    ("List available backups", f"mongodump {_CONNECT} --out=<output_directory>"),
    ("Restore from backup", f"mongorestore {_CONNECT} --dir=<backup_directory>/<database>"),
    (
        "Restore specific collection",
        f"mongorestore {_CONNECT} --collection=<collection> "
        "--dir=<backup_directory>/<database>/<collection>.bson",
    ),
]

POINT_IN_TIME_STEPS = [
    "Navigate to MongoDB Atlas dashboard",
    "Select the affected cluster",
    'Go to "Backup" section',
    'Choose "Point in Time Recovery"',
    "Select time before the data integrity issue",
    "Restore to a new cluster for verification",
    "Validate data in the new cluster",
    "Plan migration of verified data back to production",
]

RECONSTRUCT_FROM_LOGS = dedent(
    """\
    // Example: Reconstruct chat history from logs
    const reconstructChatHistory = async (userId, startTime, endTime) => {
      // Get all relevant log entries
      const logEntries = await db.logs.find({
        userId: userId,
        timestamp: { $gte: startTime, $lte: endTime },
        operation: { $in: ['message_sent', 'message_received'] }
      }).sort({ timestamp: 1 });

      // Reconstruct chat messages
      const chatHistory = logEntries.map(entry => ({
        text: entry.messageContent,
        sender: entry.operation === 'message_sent' ? 'user' : 'bot',
        timestamp: entry.timestamp
      }));

      // Save reconstructed history
      await db.conversations.updateOne(
        { userId: userId },
        { $set: { messages: chatHistory } }
      );

      return chatHistory;
    };
    """
)

VALIDATE_AND_CORRECT = dedent(
    """\
    // Example: Validate and correct user preferences
    const validateUserPreferences = async () => {
      // Find all user preferences
      const users = await db.users.find({});

      let corrected = 0;

      for (const user of users) {
        let needsUpdate = false;
        const preferences = user.preferences || {};

        // Ensure required fields exist with valid values
        if (!preferences.theme || !['light', 'dark', 'system'].includes(preferences.theme)) {
          preferences.theme = 'system';
          needsUpdate = true;
        }

        if (typeof preferences.notifications !== 'boolean') {
          preferences.notifications = true;
          needsUpdate = true;
        }

        // Remove invalid fields
        const validKeys = ['theme', 'notifications', 'language', 'fontSize'];
        Object.keys(preferences).forEach(key => {
          if (!validKeys.includes(key)) {
            delete preferences[key];
            needsUpdate = true;
          }
        });

        // Update if corrections were made
        if (needsUpdate) {
          await db.users.updateOne(
            { _id: user._id },
            { $set: { preferences: preferences } }
          );
          corrected++;
        }
      }

      return { total: users.length, corrected };
    };
    """
)

# Data Recovery Procedures: id -> heading.
PROCEDURES = {
    "mongodb-backup-restoration": "MongoDB Backup Restoration",
    "point-in-time-recovery": "Point-in-Time Recovery (MongoDB Atlas)",
    "data-reconstruction-from-logs": "Data Reconstruction from Logs",
    "data-validation-and-correction": "Data Validation and Correction",
}

# Appendix tables: (id, heading, columns, rows), bold markers dropped.
TABLES: list[tuple[str, str, list[str], list[list[str | int]]]] = [
    (
        "data-criticality",
        "Data Criticality Classification",
        ["Data Type", "Criticality", "Recovery Priority", "Backup Frequency", "Retention Period"],
        [
            ["User Accounts", "Critical", 1, "Daily", "90 days"],
            ["Chat History", "High", 2, "Daily", "30 days"],
            ["User Preferences", "Medium", 3, "Weekly", "30 days"],
            ["Usage Analytics", "Low", 4, "Monthly", "90 days"],
        ],
    ),
    (
        "backup-schedule",
        "Backup Schedule and Retention",
        ["Backup Type", "Frequency", "Retention", "Verification"],
        [
            ["Full Database", "Daily", "30 days", "Weekly"],
            ["Incremental", "Hourly", "7 days", "Daily"],
            ["Point-in-Time", "Continuous", "72 hours", "Automatic"],
            ["Schema Backup", "On change", "Indefinite", "On change"],
        ],
    ),
    (
        "integrity-checks",
        "Data Integrity Checks",
        ["Check Type", "Frequency", "Description", "Action on Failure"],
        [
            [
                "Schema Validation",
                "Continuous",
                "Validates documents against schema",
                "Log and alert",
            ],
            [
                "Referential Integrity",
                "Daily",
                "Checks for orphaned references",
                "Alert and report",
            ],
            [
                "Consistency Check",
                "Weekly",
                "Verifies data consistency across collections",
                "Alert and investigate",
            ],
            [
                "Backup Verification",
                "Weekly",
                "Restores sample data from backup",
                "Alert and investigate",
            ],
        ],
    ),
    (
        "rto",
        "Recovery Time Objectives (RTO)",
        ["Data Type", "RTO", "Notes"],
        [
            ["User Accounts", "1 hour", "Critical for authentication"],
            ["Chat History", "4 hours", "Important for user experience"],
            ["User Preferences", "8 hours", "Affects UI but not critical"],
            ["Usage Analytics", "24 hours", "Used for reporting only"],
        ],
    ),
    (
        "rpo",
        "Recovery Point Objectives (RPO)",
        ["Data Type", "RPO", "Notes"],
        [
            ["User Accounts", "15 minutes", "Minimal acceptable data loss"],
            ["Chat History", "1 hour", "Some recent messages may be lost"],
            ["User Preferences", "24 hours", "Recent preference changes may be lost"],
            ["Usage Analytics", "48 hours", "Some analytics data may be lost"],
        ],
    ),
]

# Every MongoDB query of the seed: diagnostic id -> the query as the seed wrote it.
SEED_QUERIES: dict[str, str] = {
    "db-check": 'db.runCommand({ dbCheck: "collection_name" })',
    "reindex": "db.collection_name.reIndex()",
    "orphaned-documents": (
        'db.collection_name.find({ "parentId": { $exists: true }, "parentId": null })'
    ),
    "missing-in-secondary": 'db.collection_name.find({\n  "_id": { $nin: secondarySystemIds }\n})',
    "updated-after-sync": (
        'db.collection_name.find({\n  "lastUpdated": { $gt: synchronizationTimestamp }\n})'
    ),
    "missing-field": 'db.collection_name.find({\n  "new_field": { $exists: false }\n})',
    "wrong-type": (
        "db.collection_name.find({\n"
        '  "field_name": { $type: "string" }  // When it should be another type\n'
        "})"
    ),
    "deleted-after": (
        'db.collection_name.find({\n  "deletedAt": { $gt: suspectedIncidentTime }\n})'
    ),
    "audit-log-deletions": dedent(
        """\
        db.auditLog.find({
          "operation": "delete",
          "collection": "collection_name",
          "timestamp": { $gt: suspectedIncidentTime }
        })"""
    ),
    "orphaned-references": dedent(
        """\
        db.messages.aggregate([
          {
            $lookup: {
              from: "conversations",
              localField: "conversationId",
              foreignField: "_id",
              as: "conversation"
            }
          },
          {
            $match: {
              conversation: { $size: 0 }
            }
          }
        ]).toArray()"""
    ),
    "invalid-user-types": dedent(
        r"""
        db.users.find({
          $or: [
            { "email": { $type: "string", $not: /^.+@.+\..+$/ } },
            { "createdAt": { $not: { $type: "date" } } },
            { "lastLogin": { $exists: true, $not: { $type: "date" } } }
          ]
        })"""
    ).lstrip("\n"),
    "duplicate-keys": dedent(
        """\
        db.collection.aggregate([
          { $group: { _id: "$uniqueField", count: { $sum: 1 } } },
          { $match: { count: { $gt: 1 } } }
        ])"""
    ),
}

# The diagnostics each scenario's code block becomes, one per query.
SCENARIO_DIAGNOSTICS: dict[str, list[str]] = {
    "database-corruption": ["db-check", "reindex", "orphaned-documents"],
    "data-synchronization": ["missing-in-secondary", "updated-after-sync"],
    "schema-migration-failure": ["missing-field", "wrong-type"],
    "data-loss": ["deleted-after", "audit-log-deletions"],
}
WRITING_DIAGNOSTICS = {"db-check", "reindex"}

# --------------------------------------------------------------------------- reading the model


def all_text(pb: Playbook) -> set[str]:
    """Every piece of text the model holds: titles, items, options, cells, descriptions, …"""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, str):
            found.add(value)
        elif isinstance(value, bool):
            return
        elif isinstance(value, int | float):
            found.add(str(value))
        elif isinstance(value, dict):
            for child in value.values():
                walk(child)
        elif isinstance(value, list | tuple):
            for child in value:
                walk(child)

    walk(pb.model_dump())
    return found


def step_texts(pb: Playbook, section_id: str, step_id: str) -> list[str] | None:
    """The texts of a step's items and their options, or None when there is no such step."""
    step = pb.steps().get(f"{section_id}.{step_id}")
    if step is None:
        return None
    texts: list[str] = []
    for item in step.items:
        texts.append(item.text)
        texts.extend(item.options)
    return texts


def bullet_present(pb: Playbook, section_id: str, step_id: str, text: str) -> bool:
    """Whether the seed's bullet is an item (or an option) of the step it belongs to."""
    return text in (step_texts(pb, section_id, step_id) or [])


def missing_bullets(pb: Playbook) -> list[tuple[str, str, str]]:
    """Every seed bullet the model lacks where it belongs, as (section, step, text)."""
    return [case for case in BULLETS if not bullet_present(pb, *case)]


def section_titles(pb: Playbook) -> dict[str, str]:
    titles = {pb.assessment.id: pb.assessment.title}
    titles.update({p.id: p.title for p in pb.phases})
    titles.update({s.id: s.title for s in pb.scenarios})
    titles.update({s.id: s.title for s in pb.post_incident})
    return titles


def heading_title(heading: str) -> str:
    """A seed heading as the model titles it: no "Phase N:" prefix, no time in parentheses."""
    return re.sub(r"^Phase \d+: | \([^)]*\)$", "", heading)


def heading_window(heading: str) -> tuple[int, int] | None:
    """The window a phase heading gives, in seconds: "(1-3 hours)" -> (3600, 10800)."""
    match = re.search(r"\((\d+)-(\d+) (minutes|hours)\)$", heading)
    if match is None:
        return None
    unit = 60 if match.group(3) == "minutes" else 3600
    return int(match.group(1)) * unit, int(match.group(2)) * unit


def rendered_line(line: str) -> str:
    """A seed message line as the template file writes it."""
    for placeholder, variable in PLACEHOLDERS.items():
        line = line.replace(placeholder, "{{ " + variable + " }}")
    return line


def hours(seconds: int) -> str:
    count = seconds // 3600
    return f"{count} hour" if count == 1 else f"{count} hours"


def param_uses(value: Any) -> Iterator[str]:
    """Every parameter a query uses; a `$param` pasted into a string yields "<pasted: …>"."""
    if isinstance(value, dict):
        if "$param" in value:
            yield str(value["$param"])
            return
        for key, child in value.items():
            if key.startswith("$param:"):
                yield key.removeprefix("$param:")
            elif "$param" in key:
                yield f"<pasted: {key}>"
            yield from param_uses(child)
    elif isinstance(value, list):
        for child in value:
            yield from param_uses(child)
    elif isinstance(value, str) and "$param" in value:
        yield f"<pasted: {value}>"


# --------------------------------------------------------------------------- cases

BULLETS: list[tuple[str, str, str]] = [
    (section_id, step_id, text)
    for section_id, _heading, steps in CHECKLISTS
    for step_id, _title, bullets in steps
    for text in bullets
]
STEP_TITLES: list[tuple[str, str, str]] = [
    (section_id, step_id, title)
    for section_id, _heading, steps in CHECKLISTS
    for step_id, title, _bullets in steps
]
TABLE_ROWS: list[tuple[str, str, list[str | int]]] = [
    (table_id, title, row) for table_id, title, _columns, rows in TABLES for row in rows
]
MESSAGE_LINES: list[tuple[str, str]] = [
    (template_id, line)
    for template_id, (_title, _status, lines) in SEED_MESSAGES.items()
    for line in lines
    if line
]


@pytest.fixture(scope="module")
def playbook() -> Playbook:
    return load(PLAYBOOK_FILE).playbook


@pytest.fixture(scope="module")
def template_dir() -> Path:
    return load(PLAYBOOK_FILE).template_dir


# --------------------------------------------------------------------------- text of the seed


def test_top_level(playbook: Playbook) -> None:
    assert playbook.version == 1
    assert playbook.id == "data-integrity"
    assert playbook.title == "Data Integrity Playbook"
    assert playbook.service == "Chatbot Fluxa"
    assert playbook.summary == SUMMARY


@pytest.mark.parametrize("heading", list(HEADINGS))
def test_heading(playbook: Playbook, heading: str) -> None:
    assert HEADINGS[heading](playbook), f"nothing in the playbook carries {heading!r}"


@pytest.mark.parametrize(
    ("section_id", "heading"),
    [pytest.param(s, h, id=h) for s, h, _steps in CHECKLISTS],
)
def test_section_heading(playbook: Playbook, section_id: str, heading: str) -> None:
    assert section_titles(playbook).get(section_id) == heading_title(heading)


@pytest.mark.parametrize(
    ("section_id", "step_id", "title"),
    [pytest.param(*case, id=f"{case[0]}/{case[1]}: {case[2]}") for case in STEP_TITLES],
)
def test_step_title(playbook: Playbook, section_id: str, step_id: str, title: str) -> None:
    step = playbook.steps().get(f"{section_id}.{step_id}")
    assert step is not None, f"no step {step_id!r} in {section_id!r}"
    # A scenario's detection and recovery steps are titled by the model ("Detection signs").
    assert step.title.casefold() == title.casefold()


@pytest.mark.parametrize(
    ("section_id", "step_id", "text"),
    [pytest.param(*case, id=f"{case[0]}/{case[1]}: {case[2]}") for case in BULLETS],
)
def test_bullet(playbook: Playbook, section_id: str, step_id: str, text: str) -> None:
    assert bullet_present(playbook, section_id, step_id, text), (
        f"{text!r} is not an item of {section_id}.{step_id}"
    )


def test_sub_bullets_are_options(playbook: Playbook) -> None:
    step = playbook.steps()["recovery-planning.develop-recovery-strategy"]
    item = next(i for i in step.items if i.text == "Evaluate recovery options:")
    assert item.options == [
        "Restore from backup",
        "Data reconstruction",
        "Manual correction",
        "Hybrid approach",
    ]


@pytest.mark.parametrize(
    ("group_id", "title", "text"),
    [pytest.param(g, t, text, id=f"{t}: {text}") for g, t, bullets in TRIGGERS for text in bullets],
)
def test_trigger(playbook: Playbook, group_id: str, title: str, text: str) -> None:
    group = next((g for g in playbook.triggers if g.id == group_id), None)
    assert group is not None, f"no trigger group {group_id!r}"
    assert group.title == title
    assert text in [item.text for item in group.items]


@pytest.mark.parametrize(
    ("aspect", "classification", "notes"),
    [pytest.param(*row, id=row[0]) for row in SEVERITY_TABLE],
)
def test_severity_row(playbook: Playbook, aspect: str, classification: str, notes: str) -> None:
    policy = playbook.severity
    default = policy.level(policy.default)
    assert default is not None
    encoded: dict[str, tuple[str, str]] = {
        "Default Severity": (f"{default.id} - {default.name}", policy.escalation_rule),
        "Response Time": (hours(default.response), default.description),
        "Resolution Time Target": (hours(default.resolution), default.description),
        "Escalation Path": (" \u2192 ".join(policy.escalation_path), policy.escalation_basis),
    }
    got_classification, got_notes = encoded[aspect]
    assert got_classification == classification
    assert notes in got_notes


@pytest.mark.parametrize(
    ("table_id", "title", "row"),
    [pytest.param(*case, id=f"{case[1]}: {case[2][0]}") for case in TABLE_ROWS],
)
def test_table_row(playbook: Playbook, table_id: str, title: str, row: list[str | int]) -> None:
    table = next((t for t in playbook.appendix if t.id == table_id), None)
    assert table is not None, f"no appendix table {table_id!r}"
    assert table.title == title
    assert [str(c) for c in row] in [[str(c) for c in r] for r in table.rows]


@pytest.mark.parametrize(
    ("table_id", "columns"), [pytest.param(t, c, id=t) for t, _title, c, _rows in TABLES]
)
def test_table_columns(playbook: Playbook, table_id: str, columns: list[str]) -> None:
    table = next(t for t in playbook.appendix if t.id == table_id)
    assert table.columns == columns
    assert len(table.rows) == len(next(rows for t, _, _, rows in TABLES if t == table_id))


@pytest.mark.parametrize(
    ("template_id", "line"),
    [pytest.param(t, line, id=f"{t}: {line[:60]}") for t, line in MESSAGE_LINES],
)
def test_template_line(template_dir: Path, playbook: Playbook, template_id: str, line: str) -> None:
    file = template_dir / playbook.communications.templates[template_id].file
    assert rendered_line(line) in file.read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize("template_id", list(SEED_MESSAGES))
def test_template_file_is_the_seed_message(
    template_dir: Path, playbook: Playbook, template_id: str
) -> None:
    _title, _status, lines = SEED_MESSAGES[template_id]
    file = template_dir / playbook.communications.templates[template_id].file
    expected = "\n".join(rendered_line(line) for line in lines) + "\n"
    assert file.read_text(encoding="utf-8") == expected


@pytest.mark.parametrize("template_id", list(SEED_MESSAGES))
def test_template_renders_back_to_the_seed(
    template_dir: Path, playbook: Playbook, template_id: str
) -> None:
    jinja2 = pytest.importorskip("jinja2")
    from jinja2 import meta
    from jinja2.sandbox import SandboxedEnvironment

    template = playbook.communications.templates[template_id]
    source = (template_dir / template.file).read_text(encoding="utf-8")
    env = SandboxedEnvironment(undefined=jinja2.StrictUndefined)
    assert meta.find_undeclared_variables(env.parse(source)) == set(template.variables)
    # Filling each variable with the seed's placeholder gives the seed's message back.
    values = {variable: placeholder for placeholder, variable in PLACEHOLDERS.items()}
    _title, _status, lines = SEED_MESSAGES[template_id]
    assert env.from_string(source).render(values) == "\n".join(lines)


@pytest.mark.parametrize("procedure_id", list(PROCEDURES))
def test_procedure_title(playbook: Playbook, procedure_id: str) -> None:
    procedure = next((p for p in playbook.recovery_procedures if p.id == procedure_id), None)
    assert procedure is not None, f"no recovery procedure {procedure_id!r}"
    assert procedure.title == PROCEDURES[procedure_id]


def test_procedure_commands(playbook: Playbook) -> None:
    procedures = {p.id: p for p in playbook.recovery_procedures}
    backup = procedures["mongodb-backup-restoration"]
    assert [(c.description, c.code) for c in backup.commands] == BACKUP_COMMANDS
    assert {c.language for c in backup.commands} == {"bash"}
    assert "mongodump" in backup.summary and "does not list backups" in backup.summary
    assert [s.text for s in procedures["point-in-time-recovery"].steps] == POINT_IN_TIME_STEPS
    for procedure_id, code in [
        ("data-reconstruction-from-logs", RECONSTRUCT_FROM_LOGS),
        ("data-validation-and-correction", VALIDATE_AND_CORRECT),
    ]:
        [command] = procedures[procedure_id].commands
        assert command.language == "javascript"
        assert command.code == code


# --------------------------------------------------------------------------- structure


def test_severity(playbook: Playbook) -> None:
    policy = playbook.severity
    assert policy.default == "P2"
    p2 = policy.level("P2")
    assert p2 is not None and p2.defined_by == "source"
    assert (p2.name, p2.response, p2.resolution) == ("High", 3600, 28800)
    assert policy.escalation_path == ["Technical Lead", "Engineering Manager", "CTO"]
    p1 = policy.level("P1")
    assert p1 is not None and p1.defined_by == "playbook"
    assert "defined by this playbook" in p1.description
    assert [lvl.id for lvl in policy.levels] == ["P1", "P2"]  # most severe first


def test_phases(playbook: Playbook) -> None:
    got = {p.id: (p.stage, p.starts, p.ends) for p in playbook.phases}
    assert got == PHASES
    assert [p.id for p in playbook.phases] == list(PHASES)
    # The windows are the ones the seed's phase headings give.
    headings = {s: h for s, h, _ in CHECKLISTS if s in PHASES}
    for phase_id, (_stage, starts, ends) in PHASES.items():
        assert heading_window(headings[phase_id]) == (starts, ends)


def test_scenarios(playbook: Playbook) -> None:
    assert {s.id: s.title for s in playbook.scenarios} == SCENARIOS
    for scenario in playbook.scenarios:
        assert scenario.phase == "investigation"
        assert scenario.investigation.id == "investigation"
        assert scenario.investigation.title == "Investigation Steps"
        assert set(SCENARIO_DIAGNOSTICS[scenario.id]) <= set(scenario.investigation.diagnostics)
    corruption = next(s for s in playbook.scenarios if s.id == "database-corruption")
    assert "list-indexes" in corruption.investigation.diagnostics


def test_templates(playbook: Playbook) -> None:
    templates = playbook.communications.templates
    assert {k: (t.title, t.status) for k, t in templates.items()} == {
        k: (title, status) for k, (title, status, _lines) in SEED_MESSAGES.items()
    }
    assert {k: t.phase for k, t in templates.items()} == {
        "initial": "immediate-response",
        "progress": "recovery-execution",
        "resolution": "service-restoration",
    }
    steps = playbook.steps()
    assert steps["immediate-response.initial-communication"].templates == ["initial"]
    assert steps["recovery-execution.update-communication"].templates == ["progress"]
    assert steps["service-restoration.user-communication"].templates == ["resolution"]


def test_steps_reference_diagnostics_and_procedures(playbook: Playbook) -> None:
    steps = playbook.steps()
    for key in (
        "investigation.detailed-data-analysis",
        "investigation.determine-scope-and-impact",
        "recovery-execution.verify-recovery",
        "service-restoration.final-verification",
    ):
        assert set(TESTING_SCRIPT_DIAGNOSTICS) <= set(steps[key].diagnostics), key
    for key in (
        "recovery-planning.develop-recovery-strategy",
        "recovery-planning.prepare-recovery-resources",
        "recovery-execution.implement-recovery-plan",
    ):
        assert steps[key].procedures, key


@pytest.mark.parametrize("diagnostic_id", list(SEED_QUERIES))
def test_seed_query_has_a_diagnostic(playbook: Playbook, diagnostic_id: str) -> None:
    diagnostic = playbook.diagnostics.get(diagnostic_id)
    assert isinstance(diagnostic, MongoDiagnostic), f"no mongo diagnostic {diagnostic_id!r}"
    assert SEED_QUERIES[diagnostic_id] in diagnostic.source
    assert diagnostic.description


def test_only_the_writing_diagnostics_write(playbook: Playbook) -> None:
    writing = {k for k, d in playbook.diagnostics.items() if d.writes}
    assert writing == WRITING_DIAGNOSTICS
    for diagnostic_id in WRITING_DIAGNOSTICS:
        assert playbook.diagnostics[diagnostic_id].caution
    assert "list-indexes" in playbook.diagnostics["reindex"].caution
    assert "list-indexes" in playbook.diagnostics


def test_targets_are_names(playbook: Playbook) -> None:
    for diagnostic_id, diagnostic in playbook.diagnostics.items():
        assert "://" not in diagnostic.target, diagnostic_id


@pytest.mark.parametrize("diagnostic_id", [*SEED_QUERIES, "list-indexes"])
def test_parameters_are_whole_values(playbook: Playbook, diagnostic_id: str) -> None:
    diagnostic = playbook.diagnostics[diagnostic_id]
    assert isinstance(diagnostic, MongoDiagnostic)
    query = diagnostic.query.model_dump(by_alias=True, exclude_none=True)
    uses = set(param_uses(query))
    assert not {u for u in uses if u.startswith("<pasted")}, uses
    assert uses <= set(diagnostic.params)


@pytest.mark.parametrize("diagnostic_id", sorted(set(SEED_QUERIES) - WRITING_DIAGNOSTICS))
def test_reads_are_bounded(playbook: Playbook, diagnostic_id: str) -> None:
    diagnostic = playbook.diagnostics[diagnostic_id]
    assert isinstance(diagnostic, MongoDiagnostic)
    query = diagnostic.query
    if query.op == "find":
        assert query.limit is not None
    elif query.op == "aggregate":
        assert "$limit" in query.pipeline[-1]
    assert diagnostic.expect, "a read says what healthy looks like"


def test_query_encodings(playbook: Playbook) -> None:
    def query(diagnostic_id: str) -> dict[str, Any]:
        diagnostic = playbook.diagnostics[diagnostic_id]
        assert isinstance(diagnostic, MongoDiagnostic)
        return diagnostic.query.model_dump(by_alias=True, exclude_none=True)

    assert query("db-check")["command"] == {"dbCheck": {"$param": "collection"}}
    assert query("reindex")["command"] == {"reIndex": {"$param": "collection"}}
    # The seed repeated the key parentId; the intent is "exists and is null".
    assert query("orphaned-documents")["filter"] == {"$param:field": {"$exists": True, "$eq": None}}
    assert query("invalid-user-types")["filter"]["$or"][0] == {
        "email": {"$type": "string", "$not": {"$regex": r"^.+@.+\..+$"}}
    }
    assert query("duplicate-keys")["pipeline"][0]["$group"]["_id"] == {
        "$param": "field",
        "as": "field_ref",
    }


# --------------------------------------------------------------------------- the check can fail


def test_the_model_has_every_bullet(playbook: Playbook) -> None:
    assert missing_bullets(playbook) == []


def test_a_removed_step_is_detected(playbook: Playbook) -> None:
    """Drop one step from a copy of the model: its bullets must be reported missing."""
    phase = playbook.phase("investigation")
    assert phase is not None
    removed = phase.steps[0]
    assert removed.id == "detailed-data-analysis"
    reduced = playbook.model_copy(
        update={
            "phases": [
                p.model_copy(update={"steps": p.steps[1:]}) if p.id == phase.id else p
                for p in playbook.phases
            ]
        }
    )
    expected = [case for case in BULLETS if case[:2] == ("investigation", removed.id)]
    assert len(expected) == 5
    assert missing_bullets(reduced) == expected
    assert "Examine database logs and audit trails" in all_text(playbook)
    assert "Examine database logs and audit trails" not in all_text(reduced)
