"""Gateway: the one public URL. Routes the contract's paths and orchestrates purchases."""
