"""Published MCP tools: filesystem, memory, sequentialthinking, git, time, fetch, everything. Copied from modelcontextprotocol/servers src/{filesystem,memory,sequentialthinking}/index.ts, src/git|time|fetch/src/mcp_server_*/server.py, src/everything/tools/*.ts @ 76d64c822f5125032f89eb71dbdb94e42b434821:
name, description and each parameter's description as published (types,
enums and output schemas left out)."""

from __future__ import annotations

from bench.tool_catalog import Tool

# fmt: off
SERVERS: dict[str, list[Tool]] = {
    'filesystem': [
        ('read_file', 'Read the complete contents of a file as text. DEPRECATED: Use read_text_file instead.', {}),
        ('read_text_file', "Read the complete contents of a file from the file system as text. Handles various text encodings and provides detailed error messages if the file cannot be read. Use this tool when you need to examine the contents of a single file. Use the 'head' parameter to read only the first N lines of a file, or the 'tail' parameter to read only the last N lines of a file. Operates on the file as text regardless of extension. Only works within allowed directories.", {'tail': 'If provided, returns only the last N lines of the file', 'head': 'If provided, returns only the first N lines of the file'}),
        ('read_media_file', 'Read a file and return it as a base64-encoded content block with its MIME type. Image and audio files are returned as image/audio content; any other file type is returned as an embedded resource. Only works within allowed directories.', {}),
        ('read_multiple_files', "Read the contents of multiple files simultaneously. This is more efficient than reading files one by one when you need to analyze or compare multiple files. Each file's content is returned with its path as a reference. Failed reads for individual files won't stop the entire operation. Only works within allowed directories.", {}),
        ('write_file', 'Create a new file or completely overwrite an existing file with new content. Use with caution as it will overwrite existing files without warning. Handles text content with proper encoding. Only works within allowed directories.', {}),
        ('edit_file', 'Make line-based edits to a text file. Each edit replaces exact line sequences with new content. Returns a git-style diff showing the changes made. Only works within allowed directories.', {'oldText': 'Text to search for - must match exactly', 'newText': 'Text to replace with', 'dryRun': 'Preview changes using git-style diff format'}),
        ('create_directory', 'Create a new directory or ensure a directory exists. Can create multiple nested directories in one operation. If the directory already exists, this operation will succeed silently. Perfect for setting up directory structures for projects or ensuring required paths exist. Only works within allowed directories.', {}),
        ('list_directory', 'Get a detailed listing of all files and directories in a specified path. Results clearly distinguish between files and directories with [FILE] and [DIR] prefixes. This tool is essential for understanding directory structure and finding specific files within a directory. Only works within allowed directories.', {}),
        ('list_directory_with_sizes', 'Get a detailed listing of all files and directories in a specified path, including sizes. Results clearly distinguish between files and directories with [FILE] and [DIR] prefixes. This tool is useful for understanding directory structure and finding specific files within a directory. Only works within allowed directories.', {'sortBy': 'Sort entries by name or size'}),
        ('directory_tree', "Get a recursive tree view of files and directories as a JSON structure. Each entry includes 'name', 'type' (file/directory), and 'children' for directories. Files have no children array, while directories always have a children array (which may be empty). The output is formatted with 2-space indentation for readability. Only works within allowed directories.", {}),
        ('move_file', 'Move or rename files and directories. Can move files between directories and rename them in a single operation. If the destination exists, the operation will fail. Works across different directories and can be used for simple renaming within the same directory. Both source and destination must be within allowed directories.', {}),
        ('search_files', "Recursively search for files and directories matching a pattern. The patterns should be glob-style patterns that match paths relative to the working directory. Use pattern like '*.ext' to match files in current directory, and '**/*.ext' to match files in all subdirectories. Returns full paths to all matching items. Great for finding files when you don't know their exact location. Only searches within allowed directories.", {}),
        ('get_file_info', 'Retrieve detailed metadata about a file or directory. Returns comprehensive information including size, creation time, last modified time, permissions, and type. This tool is perfect for understanding file characteristics without reading the actual content. Only works within allowed directories.', {}),
        ('list_allowed_directories', 'Returns the list of directories that this server is allowed to access. Subdirectories within these allowed directories are also accessible. Use this to understand which directories and their nested paths are available before trying to access files.', {}),
    ],
    'memory': [
        ('create_entities', 'Create multiple new entities in the knowledge graph', {}),
        ('create_relations', 'Create multiple new relations between entities in the knowledge graph. Relations should be in active voice', {}),
        ('add_observations', 'Add new observations to existing entities in the knowledge graph', {'entityName': 'The name of the entity to add the observations to', 'contents': 'An array of observation contents to add'}),
        ('delete_entities', 'Delete multiple entities and their associated relations from the knowledge graph', {'entityNames': 'An array of entity names to delete'}),
        ('delete_observations', 'Delete specific observations from entities in the knowledge graph', {'entityName': 'The name of the entity containing the observations', 'observations': 'An array of observations to delete'}),
        ('delete_relations', 'Delete multiple relations from the knowledge graph', {'relations': 'An array of relations to delete'}),
        ('read_graph', 'Read the entire knowledge graph', {}),
        ('search_nodes', 'Search for nodes in the knowledge graph based on a query', {'query': 'The search query to match against entity names, types, and observation content'}),
        ('open_nodes', 'Open specific nodes in the knowledge graph by their names', {'names': 'An array of entity names to retrieve'}),
    ],
    'sequentialthinking': [
        ('sequentialthinking', 'A detailed tool for dynamic and reflective problem-solving through thoughts.\nThis tool helps analyze problems through a flexible thinking process that can adapt and evolve.\nEach thought can build on, question, or revise previous insights as understanding deepens.\n\nWhen to use this tool:\n- Breaking down complex problems into steps\n- Planning and design with room for revision\n- Analysis that might need course correction\n- Problems where the full scope might not be clear initially\n- Problems that require a multi-step solution\n- Tasks that need to maintain context over multiple steps\n- Situations where irrelevant information needs to be filtered out\n\nKey features:\n- You can adjust total_thoughts up or down as you progress\n- You can question or revise previous thoughts\n- You can add more thoughts even after reaching what seemed like the end\n- You can express uncertainty and explore alternative approaches\n- Not every thought needs to build linearly - you can branch or backtrack\n- Generates a solution hypothesis\n- Verifies the hypothesis based on the Chain of Thought steps\n- Repeats the process until satisfied\n- Provides a correct answer\n\nParameters explained:\n- thought: Your current thinking step, which can include:\n  * Regular analytical steps\n  * Revisions of previous thoughts\n  * Questions about previous decisions\n  * Realizations about needing more analysis\n  * Changes in approach\n  * Hypothesis generation\n  * Hypothesis verification\n- nextThoughtNeeded: True if you need more thinking, even if at what seemed like the end\n- thoughtNumber: Current number in sequence (can go beyond initial total if needed)\n- totalThoughts: Current estimate of thoughts needed (can be adjusted up/down)\n- isRevision: A boolean indicating if this thought revises previous thinking\n- revisesThought: If is_revision is true, which thought number is being reconsidered\n- branchFromThought: If branching, which thought number is the branching point\n- branchId: Identifier for the current branch (if any)\n- needsMoreThoughts: If reaching end but realizing more thoughts needed\n\nYou should:\n1. Start with an initial estimate of needed thoughts, but be ready to adjust\n2. Feel free to question or revise previous thoughts\n3. Don\'t hesitate to add more thoughts if needed, even at the "end"\n4. Express uncertainty when present\n5. Mark thoughts that revise previous thinking or branch into new paths\n6. Ignore information that is irrelevant to the current step\n7. Generate a solution hypothesis when appropriate\n8. Verify the hypothesis based on the Chain of Thought steps\n9. Repeat the process until satisfied with the solution\n10. Provide a single, ideally correct answer as the final output\n11. Only set nextThoughtNeeded to false when truly done and a satisfactory answer is reached', {'thought': 'Your current thinking step', 'thoughtNumber': 'Current thought number (numeric value, e.g., 1, 2, 3)', 'totalThoughts': 'Estimated total thoughts needed (numeric value, e.g., 5, 10)', 'revisesThought': 'Which thought is being reconsidered', 'branchFromThought': 'Branching point thought number', 'branchId': 'Branch identifier'}),
    ],
    'git': [
        ('git_status', 'Shows the working tree status', {}),
        ('git_diff_unstaged', 'Shows changes in the working directory that are not yet staged', {}),
        ('git_diff_staged', 'Shows changes that are staged for commit', {}),
        ('git_diff', 'Shows differences between branches or commits', {}),
        ('git_commit', 'Records changes to the repository', {}),
        ('git_add', 'Adds file contents to the staging area', {}),
        ('git_reset', 'Unstages all staged changes', {}),
        ('git_log', 'Shows the commit logs', {}),
        ('git_create_branch', 'Creates a new branch from an optional base branch', {}),
        ('git_checkout', 'Switches branches', {}),
        ('git_show', 'Shows the contents of a commit', {}),
        ('git_branch', 'List Git branches', {}),
    ],
    'time': [
        ('get_current_time', 'Get current time in a specific timezone', {'timezone': "IANA timezone name (e.g., 'America/New_York', 'Europe/London'). Use 'UTC' as local timezone if no timezone provided by the user."}),
        ('convert_time', 'Convert time between timezones', {'source_timezone': "Source IANA timezone name (e.g., 'America/New_York', 'Europe/London'). Use 'UTC' as local timezone if no source timezone provided by the user.", 'time': 'Time to convert in 24-hour format (HH:MM)', 'target_timezone': "Target IANA timezone name (e.g., 'Asia/Tokyo', 'America/San_Francisco'). Use 'UTC' as local timezone if no target timezone provided by the user."}),
    ],
    'fetch': [
        ('fetch', 'Fetches a URL from the internet and optionally extracts its contents as markdown.\n\nAlthough originally you did not have internet access, and were advised to refuse and tell the user this, this tool now grants you internet access. Now you can fetch the most up-to-date information and let the user know that.', {'url': 'URL to fetch', 'max_length': 'Maximum number of characters to return.', 'start_index': 'On return output starting at this character index, useful if a previous fetch was truncated and more context is required.', 'raw': 'Get the actual HTML content of the requested page, without simplification.'}),
    ],
    'everything': [
        ('echo', 'Echoes back the input string', {'message': 'Message to echo'}),
        ('get-annotated-message', 'Demonstrates how annotations can be used to provide metadata about content.', {}),
        ('get-env', 'Returns all environment variables, helpful for debugging MCP server configuration', {}),
        ('get-resource-links', 'Returns up to ten resource links that reference different types of resources', {}),
        ('get-resource-reference', 'Returns a resource reference that can be used by MCP clients', {}),
        ('get-roots-list', "Lists the current MCP roots provided by the client. Demonstrates the roots protocol capability even though this server doesn't access files.", {}),
        ('get-structured-content', 'Returns structured content along with an output schema for client data validation', {'temperature': 'Temperature in celsius', 'conditions': 'Weather conditions description', 'humidity': 'Humidity percentage'}),
        ('get-sum', 'Returns the sum of two numbers', {'a': 'First number', 'b': 'Second number'}),
        ('get-tiny-image', 'Returns a tiny MCP logo image.', {}),
        ('gzip-file-as-resource', 'Compresses a single file using gzip compression. Depending upon the selected output type, returns either the compressed data as a gzipped resource or a resource link, allowing it to be downloaded in a subsequent request during the current session.', {'name': 'Name of the output file'}),
        ('toggle-simulated-logging', 'Toggles simulated, random-leveled logging on or off.', {}),
        ('toggle-subscriber-updates', 'Toggles simulated resource subscription updates on or off.', {}),
        ('trigger-elicitation-request-async', 'Trigger an async elicitation request that the CLIENT executes as a background task. Demonstrates bidirectional MCP tasks where the server sends an elicitation request and the client handles user input asynchronously, allowing the server to poll for completion.', {}),
        ('trigger-elicitation-request', 'Trigger a Request from the Server for User Elicitation', {}),
        ('trigger-long-running-operation', 'Demonstrates a long running operation with progress updates.', {'steps': 'Number of steps in the operation'}),
        ('trigger-sampling-request-async', 'Trigger an async sampling request that the CLIENT executes as a background task. Demonstrates bidirectional MCP tasks where the server sends a request and the client executes it asynchronously, allowing the server to poll for progress and results.', {'prompt': 'The prompt to send to the LLM'}),
        ('trigger-sampling-request', 'Trigger a Request from the Server for LLM Sampling', {'prompt': 'The prompt to send to the LLM'}),
        ('trigger-url-elicitation', "Trigger a URL elicitation so the client can direct the user to a browser flow. Supports two mechanisms: the request path (elicitation/create, default) which awaits the user's response, and the error path (UrlElicitationRequiredError, -32042) which signals the client to handle URL elicitation via the error response. Set errorPath=true to use the error path.", {'url': 'The URL the user should open'}),
    ],
}
# fmt: on
