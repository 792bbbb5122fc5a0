"""What a run leaves: the printed tables, the JSON result, the plots, and `bench report`."""
