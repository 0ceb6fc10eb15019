"""Planning the next study: designs, design priors, simulated trials analysed by the package's
own models, assurance and operating characteristics. Imports models, inference and below."""
