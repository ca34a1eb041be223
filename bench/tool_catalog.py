"""A catalog of real-looking MCP tools (the kind a company federates: CRM,
code host, tickets, chat, calendar, files, billing, ...) and labelled
queries -- what a user would ask, worded unlike the tool's own text -- with
the one tool that answers each. Used by `bench.tool_search` (recall@5,
nDCG@5, p99 at 10,000 tools) and by the tool search tests.
"""

from __future__ import annotations

from typing import Any

Tool = tuple[str, str, dict[str, str]]

CATALOG: dict[str, list[Tool]] = {
    "crm": [
        (
            "find_contact",
            "Look up a contact by name, email or phone number.",
            {"query": "name, email or phone", "limit": "most results"},
        ),
        (
            "create_contact",
            "Create a new contact record for a person.",
            {"name": "full name", "email": "email address", "company": "employer"},
        ),
        (
            "update_contact",
            "Change fields of an existing contact.",
            {"contact_id": "contact", "fields": "fields to change"},
        ),
        (
            "list_deals",
            "List sales deals in the pipeline, filtered by stage or owner.",
            {"stage": "pipeline stage", "owner": "sales rep"},
        ),
        (
            "create_deal",
            "Open a new sales opportunity for an account.",
            {"account_id": "account", "amount": "expected value", "close_date": "expected close"},
        ),
        (
            "update_deal_stage",
            "Move a deal to another pipeline stage (won, lost, negotiation).",
            {"deal_id": "deal", "stage": "new stage"},
        ),
        (
            "log_activity",
            "Record a call, meeting or email against a contact or deal.",
            {"kind": "call, meeting or email", "notes": "what happened"},
        ),
        (
            "get_account",
            "Company account details: industry, size, owner, open deals.",
            {"account_id": "account"},
        ),
        (
            "search_accounts",
            "Search company accounts by name or domain.",
            {"query": "name or domain"},
        ),
        (
            "create_lead",
            "Capture a new lead from a web form or event.",
            {"email": "lead email", "source": "where it came from"},
        ),
        (
            "convert_lead",
            "Convert a qualified lead into a contact, account and deal.",
            {"lead_id": "lead"},
        ),
        (
            "sales_forecast",
            "Forecast this quarter's revenue from weighted open deals.",
            {"quarter": "fiscal quarter"},
        ),
    ],
    "github": [
        (
            "search_code",
            "Search source code across repositories.",
            {"query": "code search query", "repo": "repository"},
        ),
        (
            "get_file_contents",
            "Read a file from a repository at a branch or commit.",
            {"repo": "repository", "path": "file path", "ref": "branch or commit"},
        ),
        (
            "create_pull_request",
            "Open a pull request from a branch.",
            {
                "repo": "repository",
                "head": "source branch",
                "base": "target branch",
                "title": "title",
            },
        ),
        (
            "merge_pull_request",
            "Merge an approved pull request.",
            {"repo": "repository", "number": "PR number", "method": "merge, squash or rebase"},
        ),
        (
            "list_pull_requests",
            "List open pull requests of a repository.",
            {"repo": "repository", "state": "open or closed"},
        ),
        (
            "review_pull_request",
            "Submit a review: approve, comment or request changes.",
            {
                "number": "PR number",
                "event": "APPROVE, COMMENT, REQUEST_CHANGES",
                "body": "review text",
            },
        ),
        (
            "create_issue",
            "Open an issue in a repository.",
            {"repo": "repository", "title": "title", "body": "description", "labels": "labels"},
        ),
        (
            "list_commits",
            "List the commits of a branch.",
            {"repo": "repository", "branch": "branch"},
        ),
        (
            "create_branch",
            "Create a branch from another branch or commit.",
            {"repo": "repository", "name": "new branch", "from_ref": "start point"},
        ),
        (
            "get_workflow_runs",
            "Status of CI workflow runs (GitHub Actions) for a branch.",
            {"repo": "repository", "branch": "branch"},
        ),
        ("rerun_workflow", "Re-run a failed CI workflow run.", {"run_id": "workflow run"}),
        (
            "create_release",
            "Publish a release with notes from a tag.",
            {"repo": "repository", "tag": "version tag", "notes": "release notes"},
        ),
    ],
    "jira": [
        (
            "create_ticket",
            "Create a Jira ticket in a project.",
            {"project": "project key", "summary": "summary", "type": "bug, task or story"},
        ),
        (
            "get_ticket",
            "Read a ticket with its status, assignee and comments.",
            {"key": "ticket key"},
        ),
        (
            "transition_ticket",
            "Move a ticket through its workflow: in progress, done.",
            {"key": "ticket key", "status": "target status"},
        ),
        (
            "assign_ticket",
            "Assign a ticket to a person.",
            {"key": "ticket key", "assignee": "user"},
        ),
        ("comment_ticket", "Add a comment to a ticket.", {"key": "ticket key", "body": "comment"}),
        ("search_tickets", "Search tickets with JQL.", {"jql": "JQL query"}),
        ("list_sprints", "List the sprints of a board.", {"board": "board id"}),
        ("sprint_report", "Burndown and velocity of a sprint.", {"sprint": "sprint id"}),
        (
            "link_tickets",
            "Link two tickets (blocks, relates to, duplicates).",
            {"from_key": "ticket", "to_key": "ticket", "link": "link type"},
        ),
        ("log_work", "Log time spent on a ticket.", {"key": "ticket key", "hours": "time spent"}),
    ],
    "slack": [
        ("post_message", "Post a message to a channel.", {"channel": "channel", "text": "message"}),
        (
            "reply_in_thread",
            "Reply in a message's thread.",
            {"channel": "channel", "thread_ts": "thread", "text": "reply"},
        ),
        ("search_messages", "Search messages across channels.", {"query": "search terms"}),
        ("list_channels", "List channels you are a member of.", {"limit": "most results"}),
        (
            "create_channel",
            "Create a new channel.",
            {"name": "channel name", "private": "private channel"},
        ),
        (
            "invite_to_channel",
            "Invite users to a channel.",
            {"channel": "channel", "users": "user ids"},
        ),
        ("set_status", "Set your status text and emoji.", {"text": "status", "emoji": "emoji"}),
        (
            "add_reaction",
            "React to a message with an emoji.",
            {"channel": "channel", "ts": "message", "emoji": "emoji"},
        ),
        (
            "send_direct_message",
            "Send a private direct message to one person.",
            {"user": "recipient", "text": "message"},
        ),
        (
            "channel_history",
            "Read the latest messages of a channel.",
            {"channel": "channel", "limit": "how many"},
        ),
    ],
    "calendar": [
        ("list_events", "List calendar events in a time range.", {"start": "from", "end": "until"}),
        (
            "create_event",
            "Schedule a meeting and invite attendees.",
            {"title": "title", "start": "start time", "attendees": "emails"},
        ),
        (
            "update_event",
            "Move or edit an existing meeting.",
            {"event_id": "event", "start": "new start"},
        ),
        ("cancel_event", "Cancel a meeting and notify attendees.", {"event_id": "event"}),
        (
            "find_free_slots",
            "Find times when all the given people are available.",
            {"people": "emails", "duration": "minutes"},
        ),
        (
            "respond_to_invite",
            "Accept, decline or tentatively accept an invitation.",
            {"event_id": "event", "response": "accept, decline, tentative"},
        ),
        (
            "book_room",
            "Reserve a conference room for a time.",
            {"room": "room", "start": "start", "end": "end"},
        ),
        (
            "set_out_of_office",
            "Set an out-of-office period with an auto-reply.",
            {"start": "from", "end": "until", "message": "reply"},
        ),
    ],
    "drive": [
        ("search_files", "Search documents and files by name or content.", {"query": "terms"}),
        ("read_document", "Read the text of a document.", {"file_id": "file"}),
        (
            "create_document",
            "Create a new document with content.",
            {"title": "title", "content": "text"},
        ),
        (
            "share_file",
            "Share a file with people (viewer, commenter, editor).",
            {"file_id": "file", "email": "person", "role": "permission"},
        ),
        (
            "move_file",
            "Move a file into another folder.",
            {"file_id": "file", "folder_id": "folder"},
        ),
        ("delete_file", "Move a file to the trash.", {"file_id": "file"}),
        ("list_folder", "List the files in a folder.", {"folder_id": "folder"}),
        ("export_pdf", "Export a document as PDF.", {"file_id": "file"}),
        (
            "create_spreadsheet",
            "Create a spreadsheet with rows of data.",
            {"title": "title", "rows": "data"},
        ),
        ("append_rows", "Append rows to a spreadsheet.", {"sheet_id": "sheet", "rows": "rows"}),
    ],
    "billing": [
        (
            "create_invoice",
            "Create an invoice for a customer.",
            {"customer_id": "customer", "items": "line items", "due_date": "due"},
        ),
        ("send_invoice", "Email an invoice to the customer.", {"invoice_id": "invoice"}),
        (
            "list_invoices",
            "List invoices by status: draft, open, paid, overdue.",
            {"status": "status"},
        ),
        ("void_invoice", "Void an invoice that was issued by mistake.", {"invoice_id": "invoice"}),
        (
            "issue_refund",
            "Refund all or part of a payment to the customer.",
            {"payment_id": "payment", "amount": "amount"},
        ),
        (
            "get_subscription",
            "A customer's subscription plan, seats and renewal date.",
            {"customer_id": "customer"},
        ),
        (
            "change_plan",
            "Upgrade or downgrade a customer's subscription plan.",
            {"customer_id": "customer", "plan": "new plan"},
        ),
        (
            "cancel_subscription",
            "Cancel a subscription at period end.",
            {"customer_id": "customer"},
        ),
        (
            "apply_coupon",
            "Apply a discount coupon to a customer.",
            {"customer_id": "customer", "code": "coupon code"},
        ),
        ("revenue_report", "Monthly recurring revenue, churn and expansion.", {"month": "month"}),
        (
            "tax_rates",
            "Sales tax / VAT rates for a country or state.",
            {"country": "country", "region": "state"},
        ),
    ],
    "payments": [
        (
            "charge_card",
            "Charge a customer's saved card.",
            {"customer_id": "customer", "amount": "amount", "currency": "currency"},
        ),
        ("get_payment", "Details and status of a payment.", {"payment_id": "payment"}),
        ("list_disputes", "List chargebacks and disputes.", {"status": "status"}),
        (
            "respond_dispute",
            "Submit evidence for a chargeback dispute.",
            {"dispute_id": "dispute", "evidence": "documents"},
        ),
        ("create_payout", "Pay out the balance to a bank account.", {"amount": "amount"}),
        ("fraud_score", "Risk score of a transaction for fraud.", {"payment_id": "payment"}),
        (
            "create_payment_link",
            "A shareable checkout link for a product and price.",
            {"product": "product", "price": "price"},
        ),
    ],
    "inventory": [
        (
            "check_stock",
            "Units on hand of a SKU at each warehouse.",
            {"sku": "product SKU", "warehouse": "warehouse"},
        ),
        (
            "reserve_stock",
            "Hold units of a SKU for an order.",
            {"sku": "SKU", "quantity": "units", "order_id": "order"},
        ),
        (
            "adjust_stock",
            "Correct a stock count after a physical count or damage.",
            {"sku": "SKU", "delta": "change", "reason": "why"},
        ),
        (
            "transfer_stock",
            "Move units between warehouses.",
            {
                "sku": "SKU",
                "from_warehouse": "source",
                "to_warehouse": "destination",
                "quantity": "units",
            },
        ),
        (
            "reorder_suggestions",
            "SKUs below their reorder point, with suggested quantities.",
            {"warehouse": "warehouse"},
        ),
        (
            "create_purchase_order",
            "Order more units from a supplier.",
            {"supplier": "supplier", "lines": "SKUs and quantities"},
        ),
        ("list_suppliers", "Suppliers of a SKU with lead times and prices.", {"sku": "SKU"}),
        ("product_details", "Product catalog entry: name, dimensions, price.", {"sku": "SKU"}),
        ("update_price", "Change a product's list price.", {"sku": "SKU", "price": "new price"}),
    ],
    "shipping": [
        (
            "create_shipment",
            "Create a shipment and buy a label.",
            {"order_id": "order", "carrier": "carrier", "service": "service level"},
        ),
        (
            "track_shipment",
            "Where a parcel is: carrier tracking events.",
            {"tracking_number": "tracking number"},
        ),
        (
            "shipping_rates",
            "Compare carrier rates for a parcel's weight and destination.",
            {"weight": "kg", "destination": "address"},
        ),
        (
            "schedule_pickup",
            "Book a carrier pickup at the warehouse.",
            {"carrier": "carrier", "date": "day"},
        ),
        (
            "create_return_label",
            "A prepaid return label for a customer's return.",
            {"order_id": "order"},
        ),
        ("validate_address", "Check and normalise a postal address.", {"address": "address"}),
        ("cancel_shipment", "Void a label before the parcel ships.", {"shipment_id": "shipment"}),
    ],
    "orders": [
        (
            "get_order",
            "An order with its items, payment and fulfilment status.",
            {"order_id": "order"},
        ),
        (
            "search_orders",
            "Search orders by customer, date or status.",
            {"customer": "customer", "status": "status"},
        ),
        (
            "cancel_order",
            "Cancel an order that has not shipped.",
            {"order_id": "order", "reason": "why"},
        ),
        (
            "create_order",
            "Place an order for a customer.",
            {"customer_id": "customer", "items": "items"},
        ),
        (
            "start_return",
            "Open a return (RMA) for items of an order.",
            {"order_id": "order", "items": "items"},
        ),
        ("order_notes", "Add an internal note to an order.", {"order_id": "order", "note": "note"}),
    ],
    "support": [
        (
            "create_support_case",
            "Open a customer support case.",
            {"customer": "customer", "subject": "subject", "priority": "priority"},
        ),
        ("get_case", "A support case with its conversation.", {"case_id": "case"}),
        (
            "reply_to_customer",
            "Send a reply to the customer on a case.",
            {"case_id": "case", "body": "reply"},
        ),
        (
            "escalate_case",
            "Escalate a case to tier 2 or engineering.",
            {"case_id": "case", "team": "team"},
        ),
        (
            "close_case",
            "Resolve and close a case.",
            {"case_id": "case", "resolution": "resolution"},
        ),
        ("search_knowledge_base", "Search help center articles.", {"query": "terms"}),
        ("csat_scores", "Customer satisfaction scores by agent and week.", {"week": "week"}),
        ("macro_list", "Canned responses (macros) agents use.", {"category": "category"}),
    ],
    "hr": [
        (
            "get_employee",
            "An employee's profile: title, manager, department.",
            {"employee_id": "employee"},
        ),
        ("org_chart", "The reporting chain under a manager.", {"manager_id": "manager"}),
        (
            "request_time_off",
            "Request vacation or sick leave.",
            {"start": "first day", "end": "last day", "kind": "vacation or sick"},
        ),
        ("time_off_balance", "Remaining vacation days.", {"employee_id": "employee"}),
        (
            "approve_time_off",
            "Approve or reject a leave request.",
            {"request_id": "request", "approve": "yes or no"},
        ),
        (
            "start_onboarding",
            "Start onboarding for a new hire: accounts, laptop, training.",
            {"employee_id": "new hire"},
        ),
        ("payroll_summary", "Payroll totals for a pay period.", {"period": "pay period"}),
        ("open_positions", "Job openings and their hiring managers.", {"department": "department"}),
        (
            "submit_expense",
            "Submit an expense report with receipts.",
            {"amount": "amount", "category": "category", "receipt": "receipt file"},
        ),
    ],
    "email": [
        (
            "send_email",
            "Send an email.",
            {"to": "recipients", "subject": "subject", "body": "body"},
        ),
        ("search_inbox", "Search your mailbox.", {"query": "terms"}),
        ("read_email", "Read one email with attachments.", {"message_id": "message"}),
        (
            "draft_email",
            "Save a draft without sending.",
            {"to": "recipients", "subject": "subject", "body": "body"},
        ),
        (
            "create_mail_filter",
            "A rule that labels or archives matching mail.",
            {"criteria": "match", "action": "label or archive"},
        ),
        (
            "unsubscribe",
            "Unsubscribe from a mailing list.",
            {"message_id": "a message from the list"},
        ),
    ],
    "analytics": [
        ("run_sql", "Run a read-only SQL query on the data warehouse.", {"sql": "query"}),
        ("list_dashboards", "List BI dashboards.", {"folder": "folder"}),
        ("dashboard_snapshot", "Render a dashboard as an image.", {"dashboard_id": "dashboard"}),
        (
            "funnel_report",
            "Conversion funnel between events (signup to purchase).",
            {"steps": "events"},
        ),
        ("retention_cohorts", "Weekly retention by signup cohort.", {"weeks": "how many"}),
        (
            "web_traffic",
            "Visits, sources and bounce rate of the website.",
            {"start": "from", "end": "until"},
        ),
        (
            "ab_test_results",
            "Results and significance of an A/B experiment.",
            {"experiment": "experiment"},
        ),
        ("table_schema", "Columns and types of a warehouse table.", {"table": "table"}),
    ],
    "monitoring": [
        ("list_alerts", "Alerts firing now.", {"severity": "severity"}),
        ("acknowledge_alert", "Acknowledge an alert so it stops paging.", {"alert_id": "alert"}),
        (
            "query_metrics",
            "Query a time series (CPU, latency, error rate).",
            {"query": "metric query", "range": "time range"},
        ),
        ("search_logs", "Search application logs.", {"query": "terms", "service": "service"}),
        (
            "create_incident",
            "Declare an incident and page the on-call.",
            {"title": "title", "severity": "severity"},
        ),
        ("who_is_on_call", "Who is on call for a service right now.", {"service": "service"}),
        (
            "silence_alerts",
            "Mute alerts during maintenance.",
            {"matcher": "which alerts", "duration": "how long"},
        ),
        (
            "uptime_report",
            "Availability of a service over a period (SLO).",
            {"service": "service", "period": "period"},
        ),
    ],
    "kubernetes": [
        ("list_pods", "List pods in a namespace with their status.", {"namespace": "namespace"}),
        ("pod_logs", "Logs of a pod's container.", {"pod": "pod", "container": "container"}),
        (
            "restart_deployment",
            "Rolling restart of a deployment.",
            {"deployment": "deployment", "namespace": "namespace"},
        ),
        (
            "scale_deployment",
            "Change a deployment's replica count.",
            {"deployment": "deployment", "replicas": "count"},
        ),
        (
            "rollback_deployment",
            "Roll a deployment back to its previous revision.",
            {"deployment": "deployment"},
        ),
        ("describe_node", "A node's capacity, conditions and pods.", {"node": "node"}),
        ("apply_manifest", "Apply a YAML manifest.", {"manifest": "YAML"}),
    ],
    "database": [
        ("list_tables", "Tables of the production database.", {"schema": "schema"}),
        ("explain_query", "The query plan of a SQL statement.", {"sql": "statement"}),
        ("create_backup", "Take a snapshot backup of a database.", {"database": "database"}),
        ("restore_backup", "Restore a database from a backup.", {"backup_id": "backup"}),
        ("slow_queries", "The slowest queries of the last day.", {"limit": "how many"}),
        (
            "create_db_user",
            "Create a database user with a role.",
            {"username": "user", "role": "role"},
        ),
    ],
    "docs": [
        ("search_wiki", "Search the company wiki.", {"query": "terms"}),
        (
            "create_page",
            "Create a wiki page in a space.",
            {"space": "space", "title": "title", "body": "content"},
        ),
        ("update_page", "Edit a wiki page.", {"page_id": "page", "body": "new content"}),
        ("page_history", "Versions of a wiki page and who changed it.", {"page_id": "page"}),
        ("summarize_page", "A short summary of a long page.", {"page_id": "page"}),
    ],
    "marketing": [
        (
            "create_campaign",
            "Create an email marketing campaign for a segment.",
            {"name": "name", "segment": "audience"},
        ),
        (
            "campaign_stats",
            "Opens, clicks and unsubscribes of a campaign.",
            {"campaign_id": "campaign"},
        ),
        ("create_segment", "An audience segment from customer attributes.", {"rules": "rules"}),
        (
            "schedule_social_post",
            "Schedule a post on social networks.",
            {"text": "post", "at": "when"},
        ),
        ("list_newsletter_subscribers", "Subscribers of the newsletter.", {"list_id": "list"}),
    ],
    "travel": [
        (
            "search_flights",
            "Find flights between two airports on a date.",
            {"origin": "from", "destination": "to", "date": "day"},
        ),
        (
            "book_flight",
            "Book a flight offer for a traveller.",
            {"offer_id": "offer", "traveller": "who"},
        ),
        (
            "search_hotels",
            "Hotels in a city for dates and budget.",
            {"city": "city", "check_in": "arrival", "check_out": "departure"},
        ),
        ("book_hotel", "Reserve a hotel room.", {"hotel_id": "hotel", "room": "room type"}),
        (
            "travel_policy",
            "The company's travel policy limits for a trip.",
            {"country": "destination"},
        ),
    ],
    "legal": [
        ("search_contracts", "Search signed contracts by party or clause.", {"query": "terms"}),
        (
            "send_for_signature",
            "Send a document for e-signature.",
            {"file_id": "document", "signers": "emails"},
        ),
        ("signature_status", "Who has signed an envelope so far.", {"envelope_id": "envelope"}),
        ("nda_template", "A mutual NDA filled in for a counterparty.", {"company": "counterparty"}),
    ],
    "security": [
        (
            "list_vulnerabilities",
            "Open vulnerabilities (CVEs) in our services.",
            {"severity": "severity"},
        ),
        ("rotate_secret", "Rotate an API key or password in the vault.", {"secret": "secret name"}),
        (
            "revoke_access",
            "Remove a person's access to a system.",
            {"user": "person", "system": "system"},
        ),
        (
            "audit_log_search",
            "Search the security audit log: logins, permission changes.",
            {"query": "terms"},
        ),
        ("phishing_report", "Report a suspicious email as phishing.", {"message_id": "message"}),
    ],
}

# (query, the tool that answers it): worded as a user would ask, not copied
# from the tool's text.
QUERIES: list[tuple[str, str]] = [
    ("how many units of this product do we have in the warehouse", "inventory__check_stock"),
    ("give a customer their money back", "billing__issue_refund"),
    ("where is my package right now", "shipping__track_shipment"),
    ("open a PR for my feature branch", "github__create_pull_request"),
    ("message the team channel about the release", "slack__post_message"),
    ("schedule a meeting with the design team next week", "calendar__create_event"),
    ("when is everyone free for a one hour sync", "calendar__find_free_slots"),
    ("book vacation days off", "hr__request_time_off"),
    ("how many holiday days do I have left", "hr__time_off_balance"),
    ("who is my manager's manager reporting chain", "hr__org_chart"),
    ("page the on-call engineer, production is down", "monitoring__create_incident"),
    ("show me the error logs of the checkout service", "monitoring__search_logs"),
    ("restart the api deployment in kubernetes", "kubernetes__restart_deployment"),
    ("add more replicas to handle traffic", "kubernetes__scale_deployment"),
    ("undo the last deploy", "kubernetes__rollback_deployment"),
    ("find the contract we signed with Acme", "legal__search_contracts"),
    ("get this document e-signed by the client", "legal__send_for_signature"),
    ("look up the phone number of a customer contact", "crm__find_contact"),
    ("move the deal to closed won", "crm__update_deal_stage"),
    ("what revenue will we book this quarter", "crm__sales_forecast"),
    ("file a bug in the tracker", "jira__create_ticket"),
    ("mark the ticket as done", "jira__transition_ticket"),
    ("how fast is the team burning down the sprint", "jira__sprint_report"),
    ("send an email to the supplier", "email__send_email"),
    ("query the data warehouse with SQL", "analytics__run_sql"),
    ("did the experiment variant win", "analytics__ab_test_results"),
    ("share the spreadsheet with my colleague as editor", "drive__share_file"),
    ("find the quarterly planning doc", "drive__search_files"),
    ("upgrade the customer to the enterprise plan", "billing__change_plan"),
    ("customer disputes a charge with their bank", "payments__respond_dispute"),
    ("is this transaction fraudulent", "payments__fraud_score"),
    ("we are running low, order more from the vendor", "inventory__create_purchase_order"),
    ("cheapest carrier to ship a 2 kg parcel to Berlin", "shipping__shipping_rates"),
    ("customer wants to send back a damaged item", "orders__start_return"),
    ("reply to the customer complaint", "support__reply_to_customer"),
    ("hand the case over to engineering", "support__escalate_case"),
    ("find a help article about password reset", "support__search_knowledge_base"),
    ("which queries are slowing the database", "database__slow_queries"),
    ("back up the production database before the migration", "database__create_backup"),
    ("find a flight from Paris to New York on Monday", "travel__search_flights"),
    ("reserve a hotel room in Tokyo", "travel__book_hotel"),
    ("rotate the leaked API key", "security__rotate_secret"),
    ("remove the contractor's access to production", "security__revoke_access"),
    ("what did the newsletter campaign click rate look like", "marketing__campaign_stats"),
    ("run the failed CI build again", "github__rerun_workflow"),
    ("read the README from the main branch", "github__get_file_contents"),
    ("log three hours on the ticket", "jira__log_work"),
    ("new employee starts monday, set up their laptop and accounts", "hr__start_onboarding"),
    ("submit my taxi receipt for reimbursement", "hr__submit_expense"),
    ("summarize the long design page in the wiki", "docs__summarize_page"),
]


def tools() -> list[dict[str, Any]]:
    """The catalog as MCP tool definitions, under their federated names."""
    return [
        {
            "name": f"{server}__{name}",
            "description": description,
            "inputSchema": {
                "type": "object",
                "properties": {p: {"type": "string", "description": d} for p, d in params.items()},
            },
        }
        for server, listed in CATALOG.items()
        for name, description, params in listed
    ]


if __name__ == "__main__":
    # `python -m bench.tool_catalog`: the catalog at 10,000 tools under load.
    from bench.catalog_load import main

    raise SystemExit(main())
