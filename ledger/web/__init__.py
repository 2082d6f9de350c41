"""What every blueprint shares, by concern. `create_app` registers each module that hooks into the
app (errors, auth, i18n, templating, security); blueprints import the helpers they use:

- context: the app's settings and gateway, the person's time zone, where a request comes from
- errors: one handler turns LedgerError (and HTTP errors) into SPEC 6 JSON or a translated page
- auth: sign-in state (the user loader), internal routes' token
- parsing: JSON bodies, form-only pages, forms that show a service's refusal, safe redirects
- serialisers: one JSON shape per resource
- i18n: the person's language and time zone
- templating: filters and template globals
- security: security headers on every answer
"""
