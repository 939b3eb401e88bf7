"""OAuth 2 resource server, embedded authorization server, principals and access policy for opsflow."""
