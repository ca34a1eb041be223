"""More real-looking MCP tools for `bench.tool_search`: the catalog of
`bench.tool_catalog` (178 tools, 23 servers) grown past 300 tools with the
servers a company also federates -- clocks and maps, accounting, recruiting,
cloud, CI/CD, feature flags, a storefront -- and more tools on the existing
ones. Descriptions and parameter texts are written the way published servers
write them: terse, sometimes vague, full of common words ("what is inside",
"the time to use"), so a ranker that lets any word match is tested.
"""

from __future__ import annotations

from typing import Any

from bench.tool_catalog import CATALOG, Tool

# fmt: off
MORE: dict[str, list[Tool]] = {
    "slack": [
        ("schedule_message", "Send a message to a channel at a later time.", {"channel": "channel", "text": "message", "at": "send time"}),
        ("pin_message", "Pin a message to the top of a channel.", {"channel": "channel", "ts": "message"}),
    ],
    "calendar": [
        ("add_attendees", "Invite more people to an existing event.", {"event_id": "event", "emails": "who"}),
        ("working_hours", "A person's working hours and time zone.", {"email": "person"}),
    ],
    "support": [
        ("merge_cases", "Merge duplicate support cases into one.", {"case_ids": "cases"}),
        ("sla_breaches", "Cases past their response or resolution SLA.", {"team": "support team"}),
    ],
    "analytics": [
        ("export_csv", "Export a query result or report as CSV.", {"query_id": "saved query"}),
        ("schedule_report", "Email a dashboard to people on a schedule.", {"dashboard": "dashboard", "cron": "when", "recipients": "who"}),
    ],
    "security": [
        ("enable_mfa", "Require multi-factor authentication for a user or group.", {"user": "user or group"}),
        ("scan_repository", "Scan a repository for leaked secrets and vulnerable code.", {"repo": "repository"}),
    ],
    "orders": [
        ("update_shipping_address", "Change where an order not yet shipped goes.", {"order_id": "order", "address": "new address"}),
        ("order_invoice", "The invoice PDF of an order.", {"order_id": "order"}),
    ],
    "email": [
        ("auto_reply", "Turn on an automatic reply while away.", {"message": "reply text", "until": "end date"}),
        ("forward_email", "Forward an email to someone.", {"message_id": "email", "to": "recipient"}),
    ],
    "legal": [
        ("contract_renewals", "Contracts up for renewal or expiring soon.", {"within_days": "how soon"}),
        ("gdpr_request", "Handle a data subject request: export or erase a person's data.", {"email": "person", "kind": "export or erase"}),
    ],
    "payments": [
        ("list_payouts", "Payouts to the bank account and their status.", {"since": "date"}),
        ("refund_payment", "Refund a card payment in full or in part.", {"payment_id": "payment", "amount": "how much"}),
    ],
    "shipping": [
        ("customs_declaration", "Prepare the customs declaration for an international parcel.", {"contents": "what is inside", "value": "declared value", "origin": "country of origin"}),
        ("print_label", "Print the shipping label of a shipment.", {"shipment_id": "shipment", "format": "PDF or ZPL"}),
        ("delivery_exceptions", "Shipments delayed, lost or held at a depot.", {"since": "from what time"}),
    ],
    "github": [
        ("list_branches", "List the branches of a repository.", {"repo": "owner/name"}),
        ("get_pull_request_diff", "The diff of a pull request, file by file.", {"repo": "owner/name", "number": "PR number"}),
        ("add_labels", "Add labels to an issue or pull request.", {"number": "issue or PR", "labels": "label names"}),
        ("list_security_alerts", "Dependabot alerts for vulnerable dependencies.", {"repo": "owner/name", "severity": "low to critical"}),
    ],
    "hr": [
        ("approve_expense", "Approve or reject an employee's expense report.", {"report_id": "expense report", "decision": "approve or reject"}),
        ("list_holidays", "Public holidays of an office's country this year.", {"office": "office location"}),
        ("performance_review", "Start or read a performance review cycle for an employee.", {"employee_id": "employee", "cycle": "review period"}),
    ],
    "clock": [
        ("convert_time_zone", "Convert a date and time from one time zone to another.", {"time": "the time to convert", "from_zone": "source zone, e.g. America/Los_Angeles", "to_zone": "target zone"}),
        ("current_time", "The current date and time in a city or time zone.", {"zone": "IANA zone or city"}),
        ("set_reminder", "Remind me at a given moment with a message.", {"at": "when", "message": "what to say"}),
        ("start_timer", "Start a countdown timer.", {"minutes": "duration"}),
        ("world_clock", "Side-by-side clocks for several cities.", {"cities": "list of cities"}),
    ],
    "weather": [
        ("current_conditions", "Current weather for a location: temperature, wind, humidity.", {"location": "city or coordinates"}),
        ("forecast", "Daily weather forecast for the next 7 days.", {"location": "city or coordinates", "days": "how many days"}),
        ("severe_alerts", "Active severe weather warnings for a region.", {"region": "state or country"}),
        ("air_quality", "Air quality index and pollutants.", {"location": "city"}),
    ],
    "maps": [
        ("geocode", "Turn a street address into latitude and longitude.", {"address": "street address"}),
        ("reverse_geocode", "The address at given coordinates.", {"lat": "latitude", "lng": "longitude"}),
        ("directions", "Route and travel time between two places by car, transit or foot.", {"origin": "start", "destination": "end", "mode": "driving, transit, walking"}),
        ("nearby_places", "Places of a kind near a location (restaurants, pharmacies, ...).", {"location": "where", "kind": "type of place"}),
        ("distance_matrix", "Travel distances between many origins and destinations.", {"origins": "list", "destinations": "list"}),
    ],
    "accounting": [
        ("create_journal_entry", "Post a journal entry to the general ledger.", {"lines": "debits and credits", "date": "posting date"}),
        ("trial_balance", "Trial balance of all ledger accounts at a date.", {"as_of": "date"}),
        ("profit_and_loss", "Income statement for a period.", {"period": "month, quarter or year"}),
        ("balance_sheet", "Assets, liabilities and equity at a date.", {"as_of": "date"}),
        ("reconcile_bank", "Match bank statement lines to ledger transactions.", {"account": "bank account", "statement": "statement file"}),
        ("record_bill", "Enter a vendor bill to pay later (accounts payable).", {"vendor": "supplier", "amount": "total", "due": "due date"}),
        ("aging_report", "Unpaid customer invoices grouped by days overdue.", {"as_of": "date"}),
        ("close_period", "Lock a fiscal period so nothing more is posted to it.", {"period": "month"}),
    ],
    "procurement": [
        ("create_requisition", "Request to purchase goods or services, for approval.", {"items": "what to buy", "cost_center": "budget"}),
        ("approve_requisition", "Approve a purchase requisition.", {"requisition_id": "requisition"}),
        ("vendor_onboarding", "Register a new vendor with tax and bank details.", {"name": "vendor name", "tax_id": "tax number"}),
        ("compare_quotes", "Compare vendor quotes for the same request.", {"rfq_id": "request for quotation"}),
        ("contract_spend", "Spend against each supplier contract this year.", {"supplier": "supplier"}),
    ],
    "recruiting": [
        ("post_job", "Publish a job opening on the careers site and job boards.", {"title": "job title", "description": "role description"}),
        ("list_candidates", "Candidates in a job's pipeline by stage.", {"job_id": "job", "stage": "applied, screen, onsite, offer"}),
        ("schedule_interview", "Schedule an interview loop with a candidate.", {"candidate_id": "candidate", "interviewers": "panel"}),
        ("submit_scorecard", "Submit interview feedback for a candidate.", {"candidate_id": "candidate", "rating": "hire or no hire", "notes": "feedback"}),
        ("send_offer", "Send an offer letter to a candidate.", {"candidate_id": "candidate", "salary": "base salary", "start_date": "start"}),
        ("reject_candidate", "Reject a candidate with a templated email.", {"candidate_id": "candidate", "reason": "why"}),
    ],
    "learning": [
        ("assign_course", "Assign a training course to employees.", {"course_id": "course", "employees": "who"}),
        ("course_catalog", "Search the catalog of available training courses.", {"query": "topic"}),
        ("completion_status", "Who finished mandatory trainings and who is overdue.", {"course_id": "course"}),
        ("issue_certificate", "Issue a completion certificate.", {"employee_id": "employee", "course_id": "course"}),
    ],
    "notes": [
        ("create_note", "Create a note in a notebook.", {"title": "title", "body": "text"}),
        ("search_notes", "Full-text search over my notes.", {"query": "what to find"}),
        ("append_to_note", "Append text to an existing note.", {"note_id": "note", "text": "what to add"}),
        ("list_todos", "Open to-do items across notes.", {"due": "due before"}),
        ("complete_todo", "Tick off a to-do item.", {"todo_id": "item"}),
    ],
    "translate": [
        ("translate_text", "Translate text into another language.", {"text": "what to translate", "target": "language code"}),
        ("detect_language", "Detect which language a text is written in.", {"text": "sample"}),
        ("translate_document", "Translate a whole document, keeping its layout.", {"file_id": "document", "target": "language"}),
        ("glossary", "Manage the terms that must be translated a fixed way.", {"terms": "source and target terms"}),
    ],
    "forms": [
        ("create_survey", "Create a survey or form with questions.", {"title": "survey title", "questions": "list of questions"}),
        ("survey_responses", "Responses collected by a survey.", {"survey_id": "survey"}),
        ("nps_score", "Net promoter score from survey answers over time.", {"survey_id": "survey", "period": "time range"}),
        ("close_survey", "Stop accepting responses.", {"survey_id": "survey"}),
    ],
    "iot": [
        ("list_devices", "Devices registered in the fleet and whether they are online.", {"site": "building or site"}),
        ("read_sensor", "Latest reading of a sensor (temperature, humidity, power).", {"sensor_id": "sensor"}),
        ("send_command", "Send a command to a device (reboot, set value).", {"device_id": "device", "command": "what to do"}),
        ("firmware_update", "Roll out a firmware version to devices.", {"version": "firmware version", "devices": "which"}),
        ("thermostat_setpoint", "Set the target temperature of a thermostat.", {"device_id": "thermostat", "celsius": "temperature"}),
    ],
    "cloud": [
        ("list_instances", "Virtual machines in an account and region with their state.", {"region": "region"}),
        ("start_instance", "Start a stopped virtual machine.", {"instance_id": "VM"}),
        ("stop_instance", "Stop a running virtual machine.", {"instance_id": "VM"}),
        ("upload_object", "Upload a file to an object storage bucket.", {"bucket": "bucket", "key": "object key", "file": "the file"}),
        ("list_buckets", "Object storage buckets and their sizes.", {}),
        ("cost_explorer", "Cloud spend by service and tag for a period.", {"period": "time range", "group_by": "service or tag"}),
        ("create_snapshot", "Snapshot a disk volume.", {"volume_id": "volume"}),
        ("iam_policy", "Read or change who may do what in the cloud account.", {"principal": "user or role", "policy": "permissions document"}),
    ],
    "dns": [
        ("list_records", "DNS records of a zone.", {"zone": "domain"}),
        ("create_record", "Add an A, CNAME, MX or TXT record.", {"zone": "domain", "type": "record type", "value": "target"}),
        ("purge_cache", "Purge CDN cached content for URLs or a whole zone.", {"urls": "what to purge"}),
        ("ssl_certificate", "Certificate status and expiry of a domain.", {"domain": "host name"}),
        ("register_domain", "Check availability of and register a domain name.", {"domain": "name"}),
    ],
    "cicd": [
        ("deploy_release", "Deploy a build or merged change to an environment.", {"service": "service", "environment": "staging or production", "ref": "commit, tag or PR"}),
        ("pipeline_status", "Status of the latest pipeline of a branch.", {"branch": "branch"}),
        ("promote_build", "Promote a build from staging to production.", {"build_id": "build"}),
        ("list_environments", "Deployment environments and what runs in each.", {}),
        ("deployment_history", "Past deployments of a service with who and when.", {"service": "service"}),
        ("cancel_pipeline", "Cancel a running pipeline.", {"pipeline_id": "pipeline"}),
    ],
    "flags": [
        ("toggle_flag", "Turn a feature flag on or off in an environment.", {"flag": "flag key", "environment": "where", "on": "true or false"}),
        ("rollout_percentage", "Release a feature to a percentage of users.", {"flag": "flag key", "percent": "0-100"}),
        ("list_flags", "Feature flags and their state per environment.", {"project": "project"}),
        ("flag_audit", "Who changed a flag and when.", {"flag": "flag key"}),
    ],
    "storefront": [
        ("create_product", "Add a product listing to the online store.", {"title": "product name", "price": "price", "images": "photos"}),
        ("update_listing", "Edit a product page: text, photos, price.", {"product_id": "product", "fields": "what to change"}),
        ("create_discount_code", "Create a discount code for the checkout.", {"code": "code", "percent": "discount"}),
        ("abandoned_carts", "Carts left without checkout, with their value.", {"since": "date"}),
        ("store_sales", "Online store sales by day and channel.", {"period": "time range"}),
        ("product_reviews", "Customer reviews and star ratings of a product.", {"product_id": "product"}),
    ],
    "finance": [
        ("exchange_rate", "Currency exchange rate between two currencies.", {"base": "from currency", "quote": "to currency"}),
        ("stock_quote", "Latest share price of a listed company.", {"ticker": "symbol"}),
        ("company_filings", "Annual and quarterly reports a listed company filed.", {"ticker": "symbol"}),
        ("budget_vs_actual", "Department budget against actual spend.", {"department": "department", "period": "quarter"}),
        ("cash_position", "Cash balance across all bank accounts today.", {}),
    ],
    "social": [
        ("mentions", "Posts mentioning the brand across social networks.", {"since": "date"}),
        ("reply_to_post", "Reply publicly to a social media post.", {"post_id": "post", "text": "reply"}),
        ("follower_growth", "Follower counts over time per network.", {"network": "network"}),
        ("sentiment", "Positive or negative tone of recent brand mentions.", {"period": "time range"}),
    ],
    "video": [
        ("start_meeting", "Start a video call now and get its join link.", {"topic": "title"}),
        ("meeting_recording", "Recording and transcript of a past video call.", {"meeting_id": "meeting"}),
        ("schedule_webinar", "Schedule a webinar with registration.", {"title": "title", "when": "date and time"}),
        ("meeting_attendance", "Who joined a meeting and for how long.", {"meeting_id": "meeting"}),
    ],
    "facilities": [
        ("book_desk", "Reserve a desk in the office for a day.", {"office": "office", "date": "day"}),
        ("report_issue", "Report a broken thing in the office (light, AC, printer).", {"location": "where", "what": "what is broken"}),
        ("visitor_pass", "Register a visitor and print their badge.", {"name": "visitor", "host": "who they visit"}),
        ("parking_spot", "Reserve a parking spot.", {"date": "day"}),
    ],
}
# fmt: on


def corpus() -> dict[str, list[Tool]]:
    """Every server's tools: the catalog's, then these."""
    merged = {server: list(listed) for server, listed in CATALOG.items()}
    for server, listed in MORE.items():
        merged.setdefault(server, []).extend(listed)
    return merged


def corpus_tools() -> list[dict[str, Any]]:
    """The corpus as MCP tool definitions, under their federated names."""
    return definitions(corpus())


def definitions(servers: dict[str, list[Tool]]) -> list[dict[str, Any]]:
    """``servers``' tools as MCP tool definitions, named `server__tool`."""
    return [
        {
            "name": f"{server}__{name}",
            "description": description,
            "inputSchema": {
                "type": "object",
                "properties": {p: {"type": "string", "description": d} for p, d in params.items()},
            },
        }
        for server, listed in servers.items()
        for name, description, params in listed
    ]
